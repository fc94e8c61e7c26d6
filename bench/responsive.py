#!/usr/bin/python3
"""The responsiveness row of bench/run.sh: figures about how promptly the
server answers while it has something else to do. The end-to-end tests
check these behaviours by the order of events and the server's own clocks
(a timing bound there fails whenever the machine is busy); how long things
take is measured here, on a quiet machine.

  deploy    /healthz latency while a 35 MiB package is deployed, against
            the same with nothing else going on; the server's own view of
            the deploy (its event loop thread's CPU and the whole process's,
            and its longest loop iteration meanwhile)
  backlog   synchronous calls to a function with a backlog of async events
            (and to another function), against the same calls without one
  timeout   how long a call with a 1 s timeout takes to answer
  stop      how long SIGTERM takes with an async event running and a 1 s
            shutdown grace (own servers, pinned like run.sh's)

  responsive.py --url URL --mayfly BIN --server-cpu N --runs R --out FILE

Writes JSON: every sample and the medians. Standard library only.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median, percentile  # noqa: E402

EVENT = {"X-Mayfly-Invocation-Type": "Event"}


zip_b64 = benchlib.zip_files


def put_py(api, name, source, **settings):
    spec = {"runtime": "python3", "handler": "app.handler",
            "code": {"zip_base64": zip_b64({"app.py": source})}}
    spec.update(settings)
    api.put_function(name, spec)


def timed(api, method, path, body=None, headers=None):
    t = time.perf_counter()
    st, h, data = api.request(method, path, body, headers)
    return time.perf_counter() - t, st, h, data


def summary(xs):
    return {"n": len(xs), "p50_ms": median(xs) * 1e3 if xs else None,
            "p99_ms": percentile(xs, 0.99) * 1e3 if xs else None,
            "max_ms": max(xs) * 1e3 if xs else None}


def metrics(api):
    st, _, body = api.request("GET", "/metrics")
    if st != 200:
        raise RuntimeError("GET /metrics: HTTP %d" % st)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, v = line.rpartition(" ")
            out[key] = float(v)
    return out


# ---- deploy --------------------------------------------------------------------

def poll_health(url, stop, out):
    api = benchlib.Api(url)
    while not stop.is_set():
        dt, st, _, _ = timed(api, "GET", "/healthz")
        if st == 200:
            out.append(dt)
        time.sleep(0.005)


def deploy_run(url, i, body):
    api = benchlib.Api(url)
    quiet, busy = [], []
    stop = threading.Event()
    t = threading.Thread(target=poll_health, args=(url, stop, quiet))
    t.start()
    time.sleep(2)
    stop.set()
    t.join()
    stop = threading.Event()
    t = threading.Thread(target=poll_health, args=(url, stop, busy))
    before = metrics(api)
    t.start()
    dt, st, _, data = timed(api, "PUT", "/v1/functions/big-%d" % i, body)
    stop.set()
    t.join()
    after = metrics(api)
    if st not in (200, 201):
        raise RuntimeError("the deploy failed: HTTP %d %r" % (st, data[:300]))

    def d(k):
        return after.get(k, 0) - before.get(k, 0)
    buckets = sorted((float(k.split('le="')[1].split('"')[0]), d(k)) for k in after
                     if k.startswith("mayfly_event_loop_busy_seconds_bucket"))
    iterations = buckets[-1][1] if buckets else 0
    longest = next((le for le, n in buckets if n == iterations), None)
    return {"deploy_s": dt, "health_quiet": summary(quiet), "health_during": summary(busy),
            "loop_cpu_s": d("mayfly_event_loop_cpu_seconds_total"),
            "process_cpu_s": d("process_cpu_seconds_total"),
            "loop_iterations": iterations, "longest_iteration_le_s": longest}


def deploy_part(url, runs):
    files = {"app.py": "def handler(event, context):\n    return event\n",
             "blob.bin": os.urandom(35 << 20)}
    body = json.dumps({"runtime": "python3", "handler": "app.handler",
                       "code": {"zip_base64": zip_b64(files)}}).encode()
    samples = [deploy_run(url, i, body) for i in range(runs)]
    return {"samples": samples,
            "health_quiet_p99_ms": median([s["health_quiet"]["p99_ms"] for s in samples]),
            "health_during_max_ms": median([s["health_during"]["max_ms"] for s in samples]),
            "health_during_p99_ms": median([s["health_during"]["p99_ms"] for s in samples]),
            "deploy_s": median([s["deploy_s"] for s in samples]),
            "loop_cpu_share": median([s["loop_cpu_s"] / s["process_cpu_s"] for s in samples
                                      if s["process_cpu_s"]]),
            "longest_iteration_le_s": median([s["longest_iteration_le_s"] for s in samples
                                              if s["longest_iteration_le_s"] is not None])}


# ---- backlog -------------------------------------------------------------------

BUSY_PY = "import time\ndef handler(event, context):\n    time.sleep(0.05)\n    return 1\n"
ECHO_PY = "def handler(event, context):\n    return event\n"


def sync_calls(api, busy, other):
    same, another = [], []
    for i in range(40):
        dt, st, _, data = timed(api, "POST", "/v1/functions/%s/invoke" % busy, b"{}")
        if st != 200:
            raise RuntimeError("sync call: HTTP %d %r" % (st, data[:200]))
        same.append(dt)
        if i % 2 == 0:
            dt, st, _, _ = timed(api, "POST", "/v1/functions/%s/invoke" % other, b"{}")
            another.append(dt)
    return same, another


def drain(api, name):
    while True:
        st, _, body = api.request("GET", "/v1/functions/" + name)
        q = json.loads(body)["async_queue"]
        if q["depth"] == 0 and q["running"] == 0:
            return
        time.sleep(0.05)


def backlog_part(url, runs):
    api = benchlib.Api(url)
    put_py(api, "busy", BUSY_PY, max_concurrency=4, timeout_s=60)
    put_py(api, "other", ECHO_PY, timeout_s=60)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: benchlib.Api(url).invoke("busy"), range(4)))
    api.invoke("other")
    samples = []
    for _ in range(runs):
        q_same, q_other = sync_calls(api, "busy", "other")

        def enqueue(_):
            st, _, _ = benchlib.Api(url).request("POST", "/v1/functions/busy/invoke", b"{}",
                                                 EVENT)
            return st
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(enqueue, range(320)))
        if any(c != 202 for c in codes):
            raise RuntimeError("an event was refused: %r" % sorted(set(codes)))
        b_same, b_other = sync_calls(api, "busy", "other")
        drain(api, "busy")
        samples.append({"quiet_same": summary(q_same), "quiet_other": summary(q_other),
                        "backlog_same": summary(b_same), "backlog_other": summary(b_other)})
    out = {"samples": samples}
    for k in ("quiet_same", "quiet_other", "backlog_same", "backlog_other"):
        for p in ("p50_ms", "p99_ms"):
            out["%s_%s" % (k, p)] = median([s[k][p] for s in samples])
    return out


# ---- timeout -------------------------------------------------------------------

def timeout_part(url, runs):
    api = benchlib.Api(url)
    put_py(api, "sleepy", "import time\ndef handler(event, context):\n"
           "    time.sleep(event.get('sleep', 0))\n    return 1\n", timeout_s=1)
    api.invoke("sleepy", b'{"sleep": 0}')
    waits = []
    for _ in range(max(runs, 5)):
        dt, st, h, data = timed(api, "POST", "/v1/functions/sleepy/invoke", b'{"sleep": 30}')
        if h.get("x-mayfly-function-error") != "Unhandled" or b"timed out" not in data:
            raise RuntimeError("expected a timeout: %d %r" % (st, data[:200]))
        waits.append(dt)
    return {"answered_after_s": waits, "median_s": median(waits), "max_s": max(waits)}


# ---- stop ------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_run(mayfly, cpu, tmp, i):
    port = free_port()
    data = os.path.join(tmp, "stop-%d" % i)
    log = open(os.path.join(tmp, "stop-%d.log" % i), "wb")
    proc = subprocess.Popen(["taskset", "-c", str(cpu), mayfly, "server", "--listen",
                             "127.0.0.1:%d" % port, "--data", data, "--log-level", "warn",
                             "--shutdown-grace", "1"], stdout=subprocess.PIPE, stderr=log)
    try:
        line = proc.stdout.readline().decode()
        if "listening" not in line:
            raise RuntimeError("the server did not start: %r" % line)
        url = "http://127.0.0.1:%d" % port
        api = benchlib.Api(url)
        put_py(api, "long", "import time\ndef handler(event, context):\n    time.sleep(30)\n",
               timeout_s=60)
        st, _, body = api.request("POST", "/v1/functions/long/invoke", b"{}", EVENT)
        rid = json.loads(body)["request_id"]
        while True:
            st, _, body = api.request("GET", "/v1/invocations/" + rid)
            if st == 200 and json.loads(body)["status"] == "running":
                break
            time.sleep(0.02)
        time.sleep(0.2)  # the attempt is under way in its sandbox
        api.close()
        t = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(120)
        took = time.perf_counter() - t
        if rc != 0:
            raise RuntimeError("the server exited with %d" % rc)
        return took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def stop_part(mayfly, cpu, runs):
    with tempfile.TemporaryDirectory() as tmp:
        took = [stop_run(mayfly, cpu, tmp, i) for i in range(runs)]
    return {"seconds": took, "median_s": median(took), "max_s": max(took)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--mayfly", required=True)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = {}
    for part, fn in (("deploy", lambda: deploy_part(args.url, args.runs)),
                     ("backlog", lambda: backlog_part(args.url, args.runs)),
                     ("timeout", lambda: timeout_part(args.url, args.runs)),
                     ("stop", lambda: stop_part(args.mayfly, args.server_cpu, args.runs))):
        try:
            res[part] = fn()
        except Exception as e:  # noqa: BLE001 - the report says which part failed
            res[part] = {"error": "%s: %s" % (type(e).__name__, e)}
        print("%s: %s" % (part, json.dumps({k: v for k, v in res[part].items()
                                            if k != "samples"})[:400]), flush=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    return 1 if any("error" in v for v in res.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
