#!/usr/bin/python3
"""The triggers row of bench/run.sh: what function URLs and topics cost.

URLs: the C no-op (examples/noop-c) behind its function URL (auth none),
POST /url/noop/ with a 2-byte JSON body, against the same function through
POST /v1/functions/noop/invoke, both from 32 connections (wrk -c32, the
load on its own CPU), alternated, RUNS times each, medians. Target: the URL
≥ 0.8× the invoke route (the payload 2.0 conversion must be cheap).

Topics: POST /v1/topics/bench/publish of a short message to a topic with
three subscribers (copies of the no-op), each answered 202 once the message
and its three queued events are fsync'd in one transaction, against
asynchronous invokes of a fourth copy (202 once its one event is fsync'd);
alternated, each run after the previous run's backlog has drained. Target:
publishes ≥ 0.4× enqueues. Twice: with every function at max_concurrency
64, so that the deliveries run meanwhile on the same CPU (three per
publish, one per enqueue), and with every function paused (max_concurrency
0, Lambda's reserved concurrency 0: the events wait in the queue), so that
the figure is the cost of accepting alone; after each paused run the
functions are raised to 64 until their backlog has drained, and paused
again. (At max_concurrency 1 the deliveries would still run meanwhile, on
three instances for the topic and one for the enqueues.)

  triggers.py --mayfly BIN --server-cpu N --load-cpu N --runs R --duration S --out FILE

Writes JSON: every sample and the medians. Standard library, plus wrk.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402


def wrk(url, load_cpu, duration, conns, lua):
    return benchlib.wrk(url, load_cpu, duration, conns, lua)[0]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

PUBLISH_LUA = """wrk.method = "POST"
wrk.body = '{"message": "hello"}'
wrk.headers["Content-Type"] = "application/json"
"""


def backlog(api, names):
    """Events still queued or running for the functions names."""
    left = 0
    for n in names:
        st, _, body = api.request("GET", "/v1/functions/" + n)
        if st != 200:
            raise RuntimeError("GET %s: HTTP %d %r" % (n, st, body[:200]))
        q = json.loads(body)["async_queue"]
        left += q["depth"] + q["running"]
    return left


def drain(api, names, timeout):
    deadline = time.monotonic() + timeout
    while backlog(api, names):
        if time.monotonic() > deadline:
            raise RuntimeError("the backlog of %s did not drain in %d s" % (names, timeout))
        time.sleep(0.5)


def set_concurrency(api, names, n):
    for name in names:
        st, _, out = api.request("PUT", "/v1/functions/" + name,
                                 json.dumps({"max_concurrency": n}).encode(),
                                 {"Content-Type": "application/json"})
        if st != 200:
            raise RuntimeError("PUT %s: HTTP %d %r" % (name, st, out[:200]))


def drain_paused(api, names, timeout, conc):
    """Runs a paused kind's backlog, then pauses it again."""
    if conc == 0:
        set_concurrency(api, names, 64)
    drain(api, names, timeout)
    if conc == 0:
        set_concurrency(api, names, 0)


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--drain-timeout", type=int, default=900)
    a = ap.parse_args()
    tmp = benchlib.scratch("mayfly-bench-triggers-")
    post_lua, event_lua = os.path.join(HERE, "post.lua"), os.path.join(HERE, "event.lua")
    publish_lua = os.path.join(tmp, "publish.lua")
    with open(publish_lua, "w") as f:
        f.write(PUBLISH_LUA)
    p, url = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "triggers")
    res = {"subscribers": 3, "samples": {}, "medians": {}}
    s = res["samples"]
    # (suffix, max_concurrency): the deliveries running meanwhile, or not.
    kinds = (("", 64), ("_paused", 0))
    subs = {k: ["sub1" + k, "sub2" + k, "sub3" + k] for k, _ in kinds}
    try:
        api = benchlib.Api(url)
        code = benchlib.zip_folder(os.path.join(ROOT, "examples", "noop-c"))
        api.put_function("noop", {"runtime": "provided", "handler": "bootstrap",
                                  "max_concurrency": 64, "code": {"zip_base64": code}})
        setup = [("PUT", "/v1/functions/noop/url", {"auth": "none"})]
        for k, conc in kinds:
            for name in ["enq" + k] + subs[k]:
                api.put_function(name, {"runtime": "provided", "handler": "bootstrap",
                                        "max_concurrency": conc, "code": {"zip_base64": code}})
            setup.append(("PUT", "/v1/topics/bench" + k, {}))
            setup += [("POST", "/v1/topics/bench%s/subscriptions" % k, {"function": n})
                      for n in subs[k]]
        for method, path, body in setup:
            st, _, out = api.request(method, path, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
            if st not in (200, 201):
                raise RuntimeError("%s %s: HTTP %d %r" % (method, path, st, out[:300]))
        invoke_url = "%s/v1/functions/noop/invoke" % url
        fn_url = "%s/url/noop/" % url
        enqueue_url = {k: "%s/v1/functions/enq%s/invoke" % (url, k) for k, _ in kinds}
        publish_url = {k: "%s/v1/topics/bench%s/publish" % (url, k) for k, _ in kinds}
        # Warm up each kind once.
        wrk(invoke_url, a.load_cpu, 2, 32, post_lua)
        wrk(fn_url, a.load_cpu, 2, 32, post_lua)
        for k, conc in kinds:
            wrk(enqueue_url[k], a.load_cpu, 2, 32, event_lua)
            wrk(publish_url[k], a.load_cpu, 2, 32, publish_lua)
            drain_paused(api, subs[k] + ["enq" + k], a.drain_timeout, conc)
        for _ in range(a.runs):
            s.setdefault("invoke_rps", []).append(wrk(invoke_url, a.load_cpu, a.duration, 32,
                                                      post_lua))
            s.setdefault("url_rps", []).append(wrk(fn_url, a.load_cpu, a.duration, 32, post_lua))
            for k, conc in kinds:
                s.setdefault("enqueue%s_rps" % k, []).append(
                    wrk(enqueue_url[k], a.load_cpu, a.duration, 32, event_lua))
                drain_paused(api, ["enq" + k], a.drain_timeout, conc)
                s.setdefault("publish%s_rps" % k, []).append(
                    wrk(publish_url[k], a.load_cpu, a.duration, 32, publish_lua))
                drain_paused(api, subs[k], a.drain_timeout, conc)
            print("triggers: " + ", ".join("%s %.1f" % (k, v[-1]) for k, v in s.items()),
                  flush=True)
        api.close()
        m = res["medians"]
        for k, v in s.items():
            m[k] = median(v)
        m["url_over_invoke"] = m["url_rps"] / m["invoke_rps"]
        m["publish_over_enqueue"] = m["publish_rps"] / m["enqueue_rps"]
        m["publish_over_enqueue_paused"] = m["publish_paused_rps"] / m["enqueue_paused_rps"]
    finally:
        benchlib.stop_server(p)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
