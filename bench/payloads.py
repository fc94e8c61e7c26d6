#!/usr/bin/python3
"""The payloads row of bench/run.sh: what keeping each call's event and
result in its record costs the warm path.

For C (provided) and python3, two copies of an echo function on one server,
one with record.payloads "full" (the default) and one with "off"; wrk posts
a 1 KiB JSON event (answered with the same 1 KiB) at 32 connections, the two
copies alternating, RUNS times each. The figure is throughput with "full"
over throughput with "off".

  payloads.py --mayfly BIN --server-cpu N --load-cpu N --runs R --duration S --out FILE

Writes JSON: every sample and the medians. Standard library, plus wrk.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402


def wrk(url, lua, load_cpu, duration):
    return benchlib.wrk(url, load_cpu, duration, 32, lua)[0]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ECHO_C = r"""
#include "mayfly_runtime.h"
static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    return mayfly_response_set(res, ev->body, ev->body_len);
}
int main(void)
{
    return mayfly_runtime_run(handler);
}
"""

ECHO_PY = "def handler(event, context):\n    return event\n"

# A 1 KiB event: a JSON object of short fields, as a typical API event.
EVENT = json.dumps({"id": "x" * 16, "items": [{"sku": "s%04d" % i, "qty": i} for i in range(30)],
                    "note": "n" * 10})
EVENT = EVENT[:-1] + ',"pad":"' + "p" * (1024 - len(EVENT) - 9) + '"}'
assert len(EVENT) == 1024, len(EVENT)

LUA = """wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/json"
""" % json.dumps(EVENT)


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    tmp = benchlib.scratch("mayfly-bench-payloads-")
    lua = os.path.join(tmp, "post1k.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    cdir = os.path.join(tmp, "echo-c")
    os.makedirs(cdir)
    with open(os.path.join(tmp, "echo.c"), "w") as f:
        f.write(ECHO_C)
    rt = os.path.join(ROOT, "runtimes", "c")
    subprocess.run(["gcc", "-std=gnu17", "-O2", "-I" + rt, "-o", os.path.join(cdir, "bootstrap"),
                    os.path.join(tmp, "echo.c"), os.path.join(rt, "mayfly_runtime.c")], check=True)
    c_zip = benchlib.zip_folder(cdir)
    py_zip = benchlib.zip_files({"app.py": ECHO_PY})
    p, url = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "payloads")
    res = {"event_bytes": len(EVENT), "samples": {}, "medians": {}}
    try:
        api = benchlib.Api(url)
        specs = {"c": {"runtime": "provided", "handler": "bootstrap", "code": {"zip_base64": c_zip}},
                 "python3": {"runtime": "python3", "handler": "app.handler",
                             "code": {"zip_base64": py_zip}}}
        for rt_name, spec in specs.items():
            for mode in ("full", "off"):
                name = "echo-%s-%s" % (rt_name, mode)
                api.put_function(name, dict(spec, max_concurrency=64, record={"payloads": mode}))
                st, _, body = api.invoke(name, EVENT.encode())
                if st != 200 or json.loads(body) != json.loads(EVENT):
                    raise RuntimeError("%s: HTTP %d %r" % (name, st, body[:200]))
        api.close()
        s = res["samples"]
        for rt_name in specs:
            for mode in ("full", "off"):
                wrk("%s/v1/functions/echo-%s-%s/invoke" % (url, rt_name, mode), lua, a.load_cpu, 3)
            for _ in range(a.runs):
                for mode in ("full", "off"):
                    key = "%s_%s" % (rt_name, mode)
                    s.setdefault(key, []).append(
                        wrk("%s/v1/functions/echo-%s-%s/invoke" % (url, rt_name, mode), lua,
                            a.load_cpu, a.duration))
                    print("payloads %s: %.0f req/s" % (key, s[key][-1]), flush=True)
        m = res["medians"]
        for k, v in s.items():
            m[k] = median(v)
        for rt_name in specs:
            m["%s_ratio" % rt_name] = m["%s_full" % rt_name] / m["%s_off" % rt_name]
    finally:
        benchlib.stop_server(p)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
