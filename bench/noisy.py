#!/usr/bin/python3
"""Helpers of bench/run.sh's noisy row (a victim function next to a
misbehaving neighbour, bench/neighbour.c).

  noisy.py deploy URL NAME FOLDER       deploys FOLDER (holding the
                                        neighbour's `bootstrap`) as a
                                        `provided` function NAME, one
                                        instance, a long timeout
  noisy.py start URL NAME MODE --seconds S --state FILE
                                        starts the neighbour misbehaving
                                        (MODE: spin, fork, api, log) for S
                                        seconds from now, as an async event,
                                        and returns once it runs; FILE keeps
                                        what `wait` needs
  noisy.py wait URL --state FILE --out FILE
                                        waits until the misbehaviour is over
                                        and the neighbour's call has ended;
                                        writes JSON: how the call ended and
                                        what the server's CPU did meanwhile
                                        (its event loop thread and the whole
                                        process, from its own /metrics)

Standard library only.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

DONE = ("success", "error", "timeout", "oom", "throttled")


def cpu_figures(api):
    """The server's own CPU clocks (seconds) from /metrics."""
    st, _, body = api.request("GET", "/metrics")
    if st != 200:
        raise RuntimeError("GET /metrics: HTTP %d" % st)
    out = {}
    for line in body.decode().splitlines():
        for name in ("mayfly_event_loop_cpu_seconds_total", "process_cpu_seconds_total",
                     "mayfly_event_loop_busy_seconds_count", "mayfly_event_loop_busy_seconds_sum"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def record(api, rid):
    st, _, body = api.request("GET", "/v1/invocations/" + rid)
    if st == 404:
        return None
    if st != 200:
        raise RuntimeError("GET /v1/invocations/%s: HTTP %d: %s" % (rid, st, body[:300]))
    return json.loads(body)


def deploy(args):
    api = benchlib.Api(args.url)
    spec = {"runtime": "provided", "timeout_s": 900, "max_concurrency": 1,
            "code": {"zip_base64": benchlib.zip_folder(args.folder)}}
    api.put_function(args.name, spec)
    st, _, body = api.invoke(args.name, json.dumps({"mode": "idle"}).encode())
    print("neighbour %s deployed; idle call: %d %r" % (args.name, st, body[:200]))
    return 0 if st == 200 else 1


def start(args):
    api = benchlib.Api(args.url)
    until_ms = int(time.time() * 1000 + args.seconds * 1000)
    event = json.dumps({"mode": args.mode, "until_ms": str(until_ms)}).encode()
    before = cpu_figures(api)
    st, _, body = api.request("POST", "/v1/functions/%s/invoke" % args.name, event,
                              {"X-Mayfly-Invocation-Type": "Event"})
    if st != 202:
        print("the neighbour's event was refused: %d %r" % (st, body[:300]), file=sys.stderr)
        return 1
    rid = json.loads(body)["request_id"]
    # Running (or, for the log flood, answered: its printing comes after).
    deadline = time.monotonic() + 60
    while True:
        rec = record(api, rid)
        if rec and (rec["status"] == "running" or (args.mode == "log" and rec["status"] in DONE)):
            break
        if time.monotonic() > deadline:
            print("the neighbour's event did not start: %r" % rec, file=sys.stderr)
            return 1
        time.sleep(0.05)
    with open(args.state, "w") as f:
        json.dump({"mode": args.mode, "request_id": rid, "until_ms": until_ms,
                   "started": time.time(), "before": before}, f)
    return 0


def wait(args):
    api = benchlib.Api(args.url)
    with open(args.state) as f:
        state = json.load(f)
    while time.time() * 1000 < state["until_ms"]:
        time.sleep(0.1)
    after = cpu_figures(api)
    elapsed = time.time() - state["started"]
    deadline = time.monotonic() + 120
    while True:
        rec = record(api, state["request_id"])
        if rec and rec["status"] in DONE:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    before = state["before"]

    def per_s(name):
        if name not in before or name not in after or elapsed <= 0:
            return None
        return (after[name] - before[name]) / elapsed
    out = {
        "mode": state["mode"],
        "status": rec["status"] if rec else None,
        "error_type": rec.get("error_type") if rec else None,
        "seconds": round(elapsed, 3),
        "loop_cpu_per_s": per_s("mayfly_event_loop_cpu_seconds_total"),
        "process_cpu_per_s": per_s("process_cpu_seconds_total"),
        "loop_busy_per_s": per_s("mayfly_event_loop_busy_seconds_sum"),
    }
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(os.path.abspath(args.out)),
                                     delete=False) as f:
        json.dump(out, f, indent=2)
    os.replace(f.name, args.out)
    print(json.dumps(out))
    return 0 if out["status"] in DONE else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("deploy")
    d.add_argument("url")
    d.add_argument("name")
    d.add_argument("folder")
    s = sub.add_parser("start")
    s.add_argument("url")
    s.add_argument("name")
    s.add_argument("mode", choices=("spin", "fork", "api", "log"))
    s.add_argument("--seconds", type=float, required=True)
    s.add_argument("--state", required=True)
    w = sub.add_parser("wait")
    w.add_argument("url")
    w.add_argument("--state", required=True)
    w.add_argument("--out", required=True)
    args = ap.parse_args()
    return {"deploy": deploy, "start": start, "wait": wait}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
