#!/usr/bin/python3
"""The propagation row of bench/run.sh: how long a change made on one node
takes to be served by another.

Two nodes (`mayfly server --store postgresql://…`) on a throwaway
PostgreSQL (tests/pg.sh, a cluster in a temporary directory), both pinned
to the server CPU. A python3 function answers its environment's V. UPDATES
times (20 by default): PUT /v1/functions/prop on node A with a new V; from
its 200, node B is polled (from the load CPU) until GET /v1/functions/prop
shows the new version ("known"), then invoked until it answers the new V
("served": the new version's instance started, its old one drained). The
figure is the median of "served" against the 1 s target; runs alternate
nothing, each update waits for the last one to be served.

  propagation.py --mayfly BIN --server-cpu N --load-cpu N --updates U --out FILE

Writes JSON: every sample and the medians. Standard library only.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median, percentile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_SH = os.path.join(ROOT, "tests", "pg.sh")

HANDLER = "import os\n\ndef handler(event, context):\n    return {'v': os.environ['V']}\n"

# A deadline for a change that never arrives, not a measurement.
STUCK_S = 120


def psql(url, sql):
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   capture_output=True, timeout=60)


def put(api, v, code=None):
    spec = {"env": {"V": str(v)}}
    if code:
        spec.update({"runtime": "python3", "handler": "app.handler", "timeout_s": 60,
                     "code": {"zip_base64": code}})
    st, _, body = api.request("PUT", "/v1/functions/prop", json.dumps(spec))
    if st not in (200, 201):
        raise RuntimeError("PUT on A: HTTP %d %r" % (st, body[:300]))
    return json.loads(body)["version"]


def wait(what, check):
    deadline = time.monotonic() + STUCK_S
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("%s: nothing after %d s" % (what, STUCK_S))


def known(api, version):
    st, _, body = api.request("GET", "/v1/functions/prop")
    return st == 200 and json.loads(body)["version"] >= version


def served(api, v):
    st, _, body = api.invoke("prop")
    return st == 200 and json.loads(body) == {"v": str(v)}


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--updates", type=int, default=20)
    a = ap.parse_args()
    tmp = benchlib.scratch("mayfly-bench-propagation-")
    pgdir = tempfile.mkdtemp(prefix="mayfly-bench-pg-")
    procs = []
    res = {"updates": a.updates, "samples": {"known_ms": [], "served_ms": []}, "medians": {}}
    try:
        admin = subprocess.run([PG_SH, "start", pgdir], check=True, capture_output=True,
                               text=True, timeout=300).stdout.strip()
        psql(admin, "CREATE DATABASE mayfly_propagation")
        url = admin.replace("///postgres?", "///mayfly_propagation?", 1)
        for tag in ("a", "b"):
            p, u = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "propagation-" + tag,
                                         "--store", url)
            procs.append((p, u))
        api_a, api_b = benchlib.Api(procs[0][1]), benchlib.Api(procs[1][1])
        code = benchlib.zip_files({"app.py": HANDLER})
        version = put(api_a, 0, code)
        wait("B knows the function", lambda: known(api_b, version))
        wait("B serves it", lambda: served(api_b, 0))
        s = res["samples"]
        for v in range(1, a.updates + 1):
            version = put(api_a, v)
            t0 = time.monotonic()
            wait("B knows version %d" % version, lambda: known(api_b, version))
            t1 = time.monotonic()
            wait("B serves V=%d" % v, lambda: served(api_b, v))
            t2 = time.monotonic()
            s["known_ms"].append((t1 - t0) * 1000)
            s["served_ms"].append((t2 - t0) * 1000)
            print("propagation: update %d known after %.1f ms, served after %.1f ms"
                  % (v, s["known_ms"][-1], s["served_ms"][-1]), flush=True)
        api_a.close()
        api_b.close()
        m = res["medians"]
        m["known_ms"] = median(s["known_ms"])
        m["served_ms"] = median(s["served_ms"])
        m["served_p90_ms"] = percentile(s["served_ms"], 0.9)
        m["served_over_target"] = m["served_ms"] / 1000.0
    finally:
        for p, _ in procs:
            benchlib.stop_server(p)
        subprocess.run([PG_SH, "stop", pgdir], capture_output=True, timeout=300)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
