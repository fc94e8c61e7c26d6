#!/usr/bin/python3
"""Helpers of bench/run.sh's async row (asynchronous invocations).

  asyncq.py check URL NAME             one event: fails unless the answer is
                                       202 with a request_id
  asyncq.py metrics URL FILE           saves the server's /metrics text
  asyncq.py drain URL NAME --server-pid PID [--timeout S] --out FILE
                                       waits until the function's async queue
                                       is empty (GET /v1/functions/NAME:
                                       async_queue depth and running both 0)
                                       and the server is at rest; writes JSON:
                                       the backlog found, the seconds it took

The events an enqueue run leaves behind still run after wrk stops; the
next measurement starts only once they have, so runs do not bleed into
each other. The drain time of a backlog is also a figure: how fast the
server works through queued events. Standard library only.
"""
import argparse
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def queue_state(api, name):
    st, _, body = api.request("GET", "/v1/functions/" + name)
    if st != 200:
        raise RuntimeError("GET /v1/functions/%s: HTTP %d: %s" % (name, st, body[:300]))
    q = json.loads(body)["async_queue"]
    return q


def check(url, name):
    api = benchlib.Api(url)
    st, h, body = api.request("POST", "/v1/functions/%s/invoke" % name, b"{}",
                              {"X-Mayfly-Invocation-Type": "Event"})
    print("POST %s/invoke as an event: %d %r" % (name, st, body[:200]))
    try:
        ok = st == 202 and json.loads(body).get("request_id")
    except ValueError:
        ok = False
    return 0 if ok else 1


def metrics(url, path):
    with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=60) as r:
        text = r.read().decode()
    with open(path, "w") as f:
        f.write(text)
    return 0


def drain(url, name, server_pid, timeout, out):
    api = benchlib.Api(url)
    t0 = time.monotonic()
    first = queue_state(api, name)
    q, polls = first, 1
    while q["depth"] or q["running"]:
        if time.monotonic() - t0 > timeout:
            break
        time.sleep(0.05)
        q = queue_state(api, name)
        polls += 1
    emptied = time.monotonic() - t0
    drained = not (q["depth"] or q["running"])
    # The last events' final writes and instance bookkeeping: wait until
    # the server's CPU is idle too.
    settled, _ = benchlib.wait_quiet(server_pid, timeout=3.0) if drained else (False, 0)
    res = {
        "function": name,
        "backlog": first["depth"] + first["running"],
        "drained": drained,
        "seconds": round(emptied, 3),
        "settled": settled,
        "polls": polls,
        "left": q["depth"] + q["running"],
        "enqueued": q["enqueued"],
        "attempts": q["attempts"],
        "retries": q["retries"],
        "dead_letters": q["dead_letters"],
    }
    with open(out, "w") as f:
        json.dump(res, f)
    rate = res["backlog"] / emptied if res["backlog"] and emptied > 0 else None
    print("%s: backlog %d %s in %.1f s%s" % (
        name, res["backlog"], "drained" if drained else "NOT drained (%d left)" % res["left"],
        emptied, " (%.0f events/s)" % rate if rate else ""))
    return 0 if drained else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("url")
    c.add_argument("name")
    m = sub.add_parser("metrics")
    m.add_argument("url")
    m.add_argument("file")
    d = sub.add_parser("drain")
    d.add_argument("url")
    d.add_argument("name")
    d.add_argument("--server-pid", type=int, required=True)
    d.add_argument("--timeout", type=float, default=600)
    d.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.cmd == "check":
        return check(args.url, args.name)
    if args.cmd == "metrics":
        return metrics(args.url, args.file)
    return drain(args.url, args.name, args.server_pid, args.timeout, args.out)


if __name__ == "__main__":
    sys.exit(main())
