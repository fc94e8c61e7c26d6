#!/usr/bin/python3
"""The kv row of bench/run.sh: what the key-value store costs.

Inside a warm function: a C function (the project's C library, one
kept-alive connection to MAYFLY_API) times GETS gets of a 100-byte value
with clock_gettime and answers their latencies' median; python3 does the
same with `import mayfly`. Beside it, the same C function's no-op invoke
round trip from outside at one connection (wrk -c1, its p50). The figure is
the get's p50 over the no-op invoke's p50 (target ≤ 2).

From 32 outside connections (wrk -c32, the load on its own CPU): GETs of a
100-byte value and durable PUTs of one (each acknowledged after its fsync'd
group commit), against warm no-op sync invokes of the C function on the
same server; alternated, RUNS times each, medians. Targets: reads ≥ 0.5×,
writes ≥ 0.25× the invokes.

  kv.py --mayfly BIN --server-cpu N --load-cpu N --runs R --duration S --out FILE
        [--store postgresql://…]

With --store the server keeps its stores in that PostgreSQL database (an
empty one), where the KV reads are made by reader threads: the same
figures for that path.

Writes JSON: every sample and the medians. Standard library, plus wrk.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VALUE = b"v" * 100

# {"gets": N} times N gets; anything else is a no-op.
TIMER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "mayfly_runtime.h"
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char n_s[16];
    if (mayfly_json_get_string(ev->body, ev->body_len, "gets", n_s, sizeof n_s) < 0)
        return mayfly_response_set(res, "{}", 2);
    int n = atoi(n_s);
    double *lat = malloc(sizeof *lat * (size_t)n);
    for (int i = 0; i < n; i++) {
        const char *v;
        size_t len;
        double t0 = now_us();
        int rc = mayfly_kv_get("bench", "k100", &v, &len, NULL);
        lat[i] = now_us() - t0;
        if (rc < 0 || len != 100) {
            free(lat);
            return mayfly_response_error(res, "Get", "%d %s", rc, mayfly_api_error());
        }
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    mayfly_response_printf(res, "{\"p50_us\":%.1f,\"p99_us\":%.1f}", lat[n / 2],
                           lat[n * 99 / 100]);
    free(lat);
    return 0;
}
int main(void)
{
    return mayfly_runtime_run(handler);
}
"""

TIMER_PY = r"""
import time, mayfly
store = mayfly.kv("bench")
def handler(event, context):
    n = int(event.get("gets", 0))
    lat = []
    for _ in range(n):
        t0 = time.perf_counter()
        v = store.get("k100")
        lat.append((time.perf_counter() - t0) * 1e6)
        assert len(v) == 100
    if not n:
        return {}
    lat.sort()
    return {"p50_us": lat[n // 2], "p99_us": lat[n * 99 // 100]}
"""

PUT_LUA = """wrk.method = "PUT"
wrk.body = "%s"
wrk.headers["Content-Type"] = "application/octet-stream"
""" % VALUE.decode()

NOOP_LUA = """wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Content-Type"] = "application/json"
"""


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--gets", type=int, default=2000)
    ap.add_argument("--store", help="a postgresql:// URL (default: SQLite under the data dir)")
    a = ap.parse_args()
    tmp = benchlib.scratch("mayfly-bench-kv-")
    put_lua, noop_lua = os.path.join(tmp, "put.lua"), os.path.join(tmp, "noop.lua")
    with open(put_lua, "w") as f:
        f.write(PUT_LUA)
    with open(noop_lua, "w") as f:
        f.write(NOOP_LUA)
    cdir = os.path.join(tmp, "timer-c")
    os.makedirs(cdir)
    with open(os.path.join(tmp, "timer.c"), "w") as f:
        f.write(TIMER_C)
    rt = os.path.join(ROOT, "runtimes", "c")
    subprocess.run(["gcc", "-std=gnu17", "-O2", "-I" + rt, "-o", os.path.join(cdir, "bootstrap"),
                    os.path.join(tmp, "timer.c"), os.path.join(rt, "mayfly_runtime.c")],
                   check=True)
    p, url = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "kv",
                                   *(["--store", a.store] if a.store else []))
    res = {"value_bytes": len(VALUE), "gets_per_call": a.gets, "samples": {}, "medians": {}}
    s = res["samples"]
    try:
        api = benchlib.Api(url)
        st, _, body = api.request("PUT", "/v1/kv/bench/k100", VALUE,
                                  {"Content-Type": "application/octet-stream"})
        if st != 200:
            raise RuntimeError("PUT k100: HTTP %d %r" % (st, body[:200]))
        perms = ["kv:bench"]
        api.put_function("timer-c", {"runtime": "provided", "handler": "bootstrap",
                                     "max_concurrency": 64, "permissions": perms, "timeout_s": 60,
                                     "code": {"zip_base64": benchlib.zip_folder(cdir)}})
        api.put_function("timer-py", {"runtime": "python3", "handler": "app.handler",
                                      "permissions": perms, "timeout_s": 60,
                                      "code": {"zip_base64": benchlib.zip_files(
                                          {"app.py": TIMER_PY})}})
        for name in ("timer-c", "timer-py"):
            st, _, body = api.invoke(name, json.dumps({"gets": "10"}).encode()
                                     if name == "timer-c" else b'{"gets": 10}')
            if st != 200 or "p50_us" not in json.loads(body):
                raise RuntimeError("%s: HTTP %d %r" % (name, st, body[:300]))
        invoke_url = "%s/v1/functions/timer-c/invoke" % url
        get_url = "%s/v1/kv/bench/k100" % url
        put_url = "%s/v1/kv/bench/w100" % url
        # Warm up each kind once.
        wrk(invoke_url, a.load_cpu, 2, 32, noop_lua)
        wrk(get_url, a.load_cpu, 2, 32)
        wrk(put_url, a.load_cpu, 2, 32, put_lua)
        for _ in range(a.runs):
            # Latency: gets timed inside, then the no-op invoke from outside.
            for name, ev in (("c", {"gets": str(a.gets)}), ("python3", {"gets": a.gets})):
                st, _, body = api.invoke("timer-" + ("c" if name == "c" else "py"),
                                         json.dumps(ev).encode())
                doc = json.loads(body)
                if st != 200 or "p50_us" not in doc:
                    raise RuntimeError("%s: HTTP %d %r" % (name, st, body[:300]))
                s.setdefault("inside_get_p50_us_" + name, []).append(doc["p50_us"])
                s.setdefault("inside_get_p99_us_" + name, []).append(doc["p99_us"])
            _, p50 = wrk(invoke_url, a.load_cpu, a.duration, 1, noop_lua, latency=True)
            s.setdefault("noop_invoke_p50_us", []).append(p50)
            # Throughput at 32 connections, alternated.
            s.setdefault("invoke_rps", []).append(
                wrk(invoke_url, a.load_cpu, a.duration, 32, noop_lua)[0])
            s.setdefault("get_rps", []).append(wrk(get_url, a.load_cpu, a.duration, 32)[0])
            s.setdefault("put_rps", []).append(
                wrk(put_url, a.load_cpu, a.duration, 32, put_lua)[0])
            print("kv: " + ", ".join("%s %.1f" % (k, v[-1]) for k, v in s.items()), flush=True)
        api.close()
        m = res["medians"]
        for k, v in s.items():
            m[k] = median(v)
        m["inside_get_over_noop_c"] = m["inside_get_p50_us_c"] / m["noop_invoke_p50_us"]
        m["inside_get_over_noop_python3"] = (m["inside_get_p50_us_python3"] /
                                             m["noop_invoke_p50_us"])
        m["reads_over_invokes"] = m["get_rps"] / m["invoke_rps"]
        m["writes_over_invokes"] = m["put_rps"] / m["invoke_rps"]
    finally:
        benchlib.stop_server(p)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
