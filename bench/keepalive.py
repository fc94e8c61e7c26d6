#!/usr/bin/python3
"""The keep-alive trace benchmark (docs/keep-alive.md): a seeded invocation
trace shaped like the Azure Functions 2019 trace's published distributions
(Shahrad et al., "Serverless in the Wild", USENIX ATC '20), replayed
against the real server once per keep-alive policy: fixed 1, 5 and 10
minutes (--keep-warm fixed --idle-timeout), adaptive with windows bounded
by 10 minutes (--keep-alive-max-s), and the server's default (adaptive,
windows up to the histogram's 4-hour range). Every figure comes from the server's own counters:
cold starts (mayfly_cold_starts_total over mayfly_invocations_total) and
idle instance memory (mayfly_idle_instance_memory_mb_seconds_total).

Time is compressed: one trace minute lasts --minute-s real seconds (1 by
default), so the server runs with --keep-alive-bin-s 1 (a one-minute bin)
and --idle-timeout or --keep-alive-max-s scaled alike. The first --warmup-hours of the trace are
replayed and not counted (every policy starts cold; the adaptive one
learns meanwhile, as it would have over the days before); the figures are
the deltas over the --hours after. Standard library only; traffic only to
127.0.0.1.

    bench/keepalive.py --mayfly bin/mayfly --out bench/out/keepalive.json
    bench/keepalive.py --trace-only   (prints the trace's shape)
"""
import heapq
import json
import math
import os
import random
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

MB = 128  # every function's memory_mb

# ---- the trace ---------------------------------------------------------------
#
# Shapes from the paper (section 3): most functions are rare (about 45 % of
# applications are invoked less than once an hour on average, 81 % at most
# once a minute), a few are very frequent; timers are a large share of
# triggers (periods of minutes to hours, nearly no jitter); other
# functions' inter-arrival times vary widely (coefficients of variation
# from under 1 to several), and some come in bursts. Times in trace
# minutes.

KINDS = (
    # kind, share of functions
    ("rare", 0.45),      # Poisson, mean 1 to 24 hours between calls
    ("timer", 0.25),     # a period of 2 minutes to 2 hours, a little jitter
    ("poisson", 0.12),   # mean 2 to 60 minutes, CV about 1
    ("bursty", 0.10),    # bursts of calls seconds apart, hours apart
    ("frequent", 0.08),  # several calls a minute
)
TIMER_PERIODS = (2, 5, 10, 15, 20, 30, 45, 60, 90, 120)


def function_arrivals(rng, kind, horizon):
    """One function's call times in [0, horizon) trace minutes."""
    out = []
    if kind == "rare":
        mean = math.exp(rng.uniform(math.log(60), math.log(24 * 60)))
        t = rng.expovariate(1 / mean) * rng.random()  # somewhere in its cycle
        while t < horizon:
            out.append(t)
            t += rng.expovariate(1 / mean)
    elif kind == "timer":
        period = rng.choice(TIMER_PERIODS)
        t = rng.uniform(0, period)
        while t < horizon:
            out.append(t + rng.uniform(0, 0.02))  # fires within about a second
            t += period
    elif kind == "poisson":
        mean = math.exp(rng.uniform(math.log(2), math.log(60)))
        t = rng.expovariate(1 / mean)
        while t < horizon:
            out.append(t)
            t += rng.expovariate(1 / mean)
    elif kind == "bursty":
        off = math.exp(rng.uniform(math.log(20), math.log(180)))
        t = rng.uniform(0, off)
        while t < horizon:
            for _ in range(rng.randint(3, 12)):
                if t >= horizon:
                    break
                out.append(t)
                t += rng.uniform(0.05, 0.5)
            t += rng.expovariate(1 / off)
    else:  # frequent: a lognormal inter-arrival time, CV from 1 to 3
        mean = rng.uniform(0.15, 0.6)
        cv = rng.uniform(1, 3)
        sigma = math.sqrt(math.log(1 + cv * cv))
        mu = math.log(mean) - sigma * sigma / 2
        t = rng.uniform(0, mean)
        while t < horizon:
            out.append(t)
            t += rng.lognormvariate(mu, sigma)
    return out


def make_trace(seed, n_functions, horizon):
    """[(trace minute, function name)] sorted by time, and each function's
    kind."""
    rng = random.Random(seed)
    kinds = {}
    counts = [(k, round(share * n_functions)) for k, share in KINDS]
    counts[0] = (counts[0][0], n_functions - sum(c for _, c in counts[1:]))
    calls = []
    i = 0
    for kind, count in counts:
        for _ in range(count):
            name = "ka%03d-%s" % (i, kind)
            kinds[name] = kind
            calls.extend((t, name) for t in function_arrivals(rng, kind, horizon))
            i += 1
    calls.sort()
    return calls, kinds


def trace_shape(calls, kinds, horizon):
    per = {}
    for _, name in calls:
        per[name] = per.get(name, 0) + 1
    hours = horizon / 60
    rare = sum(1 for n in kinds if per.get(n, 0) / hours < 1)
    often = sum(1 for n in kinds if per.get(n, 0) / horizon > 1)
    return {
        "functions": len(kinds),
        "calls": len(calls),
        "by_kind": {k: sum(1 for n in kinds if kinds[n] == k) for k, _ in KINDS},
        "calls_by_kind": {k: sum(per.get(n, 0) for n in kinds if kinds[n] == k) for k, _ in KINDS},
        "share_under_once_an_hour": rare / len(kinds),
        "share_over_once_a_minute": often / len(kinds),
    }


# ---- the replay ----------------------------------------------------------------

def scrape(url):
    """/metrics as {(name, function): value} for this benchmark's families."""
    api = benchlib.Api(url)
    st, _, body = api.request("GET", "/metrics")
    api.close()
    if st != 200:
        raise RuntimeError("GET /metrics: HTTP %d" % st)
    out = {}
    pat = re.compile(r'^(mayfly_[a-z_]+)\{([^}]*)\}\s+(\S+)$')
    for line in body.decode().splitlines():
        m = pat.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        fn = labels.get("function", "")
        if not fn.startswith("ka"):
            continue
        key = m.group(1)
        if key == "mayfly_prewarms_total":
            key += ":" + labels.get("outcome", "")
        if key == "mayfly_invocations_total" and labels.get("status") != "success":
            key += ":" + labels.get("status", "")
        out[(key, fn)] = out.get((key, fn), 0) + float(m.group(3))
    return out


def totals(before, after):
    keys = {k for k, _ in after}
    return {k: sum(v for (kk, _), v in after.items() if kk == k)
            - sum(v for (kk, _), v in before.items() if kk == k) for k in keys}


def replay(url, calls, minute_s, workers, mark_minute, errors):
    """Sends every call at its time (trace minute × minute_s after the
    start) from a pool of workers; returns the /metrics scraped when the
    trace reaches mark_minute, and the time it was."""
    lock = threading.Condition()
    queue = []  # (due, seq, name)
    done = [False]
    late = []

    def worker():
        api = benchlib.Api(url, timeout=120)
        while True:
            with lock:
                while not queue and not done[0]:
                    lock.wait()
                if not queue:
                    break
                due, _, name = heapq.heappop(queue)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                late.append(-delay)
            try:
                st, _, body = api.invoke(name)
                if st != 200:
                    errors.append("%s: HTTP %d %s" % (name, st, body[:120]))
            except Exception as e:  # noqa: BLE001 - counted, the replay goes on
                errors.append("%s: %s" % (name, e))
                api.close()
        api.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.monotonic() + 1.0
    mark = None
    mark_at = start + mark_minute * minute_s
    # Calls are handed to the workers a little ahead of their time, in order.
    i = 0
    while i < len(calls) or mark is None:
        now = time.monotonic()
        if mark is None and now >= mark_at:
            mark = scrape(url)
            mark_time = now
        while i < len(calls) and start + calls[i][0] * minute_s <= now + 0.2:
            with lock:
                heapq.heappush(queue, (start + calls[i][0] * minute_s, i, calls[i][1]))
                lock.notify()
            i += 1
        nxt = [mark_at] if mark is None else []
        if i < len(calls):
            nxt.append(start + calls[i][0] * minute_s - 0.2)
        time.sleep(max(0.0, min(0.05, min(nxt) - time.monotonic()) if nxt else 0.05))
    end_at = start + (calls[-1][0] if calls else 0) * minute_s
    with lock:
        done[0] = True
        lock.notify_all()
    for t in threads:
        t.join()
    return mark, mark_time, end_at, late


POLICIES = (
    # name, the server's flags (times in trace minutes, scaled)
    ("fixed-1", ("--keep-warm", "fixed", "--idle-timeout", 1)),
    ("fixed-5", ("--keep-warm", "fixed", "--idle-timeout", 5)),
    ("fixed-10", ("--keep-warm", "fixed", "--idle-timeout", 10)),
    ("adaptive-10", ("--keep-alive-max-s", 10)),
    # The server's default: adaptive, windows up to the histogram's range
    # (4 hours), as in the paper.
    ("adaptive", ()),
)


def run_policy(args, name, policy_flags, calls, kinds, tmp, code):
    minute = args.minute_s
    flags = [f if isinstance(f, str) else str(int(round(f * minute))) for f in policy_flags]
    flags += ["--keep-alive-bin-s", str(int(round(minute))), "--max-queue", "1000"]
    p, url = benchlib.start_server(args.mayfly, args.server_cpu, tmp, name, *flags)
    try:
        api = benchlib.Api(url)
        for fn in sorted(kinds):
            spec = dict(code)
            spec.update({"memory_mb": MB, "timeout_s": 60, "max_concurrency": 20})
            api.put_function(fn, spec)
        api.close()
        errors = []
        mark, mark_time, end_at, late = replay(url, calls, minute, args.workers,
                                               args.warmup_hours * 60, errors)
        # The measured span ends with the trace's last call, or after it
        # once that call answered: the idle time until now counts.
        after = scrape(url)
        measured_s = time.monotonic() - mark_time
        d = totals(mark, after)
        invocations = sum(v for k, v in d.items() if k.startswith("mayfly_invocations_total"))
        cold = d.get("mayfly_cold_starts_total", 0)
        idle = d.get("mayfly_idle_instance_memory_mb_seconds_total", 0)
        by_kind = {}
        # The same counters per function, to tell where each policy's cold
        # starts and idle memory come from.
        by_function = {}
        for (key, fn), v in after.items():
            kind = fn.split("-", 1)[1]
            k = by_kind.setdefault(kind, {"invocations": 0, "cold_starts": 0, "idle_mb_s": 0})
            f = by_function.setdefault(fn, {"invocations": 0, "cold_starts": 0, "idle_mb_s": 0,
                                            "prewarms_used": 0, "prewarms_wasted": 0})
            delta = v - mark.get((key, fn), 0)
            if key.startswith("mayfly_invocations_total"):
                k["invocations"] += delta
                f["invocations"] += delta
            elif key == "mayfly_cold_starts_total":
                k["cold_starts"] += delta
                f["cold_starts"] += delta
            elif key == "mayfly_idle_instance_memory_mb_seconds_total":
                k["idle_mb_s"] += delta
                f["idle_mb_s"] += delta
            elif key.startswith("mayfly_prewarms_total:"):
                f["prewarms_" + key.split(":", 1)[1]] = delta
        return {
            "policy": name,
            "by_kind": by_kind,
            "by_function": by_function,
            "flags": flags,
            "invocations": invocations,
            "failed": invocations - d.get("mayfly_invocations_total", 0),
            "cold_starts": cold,
            "cold_pct": 100.0 * cold / invocations if invocations else None,
            "idle_mb_s": idle,
            # In trace units: memory-minutes of idle instances per trace hour,
            # as GB-minutes.
            "idle_gb_min_per_hour": idle / minute / 1024 / args.hours,
            "prewarms_used": d.get("mayfly_prewarms_total:used", 0),
            "prewarms_wasted": d.get("mayfly_prewarms_total:wasted", 0),
            "measured_s": measured_s,
            "errors": errors[:20],
            "n_errors": len(errors),
            "late_p99_s": benchlib.percentile(late, 0.99) if late else 0,
        }
    finally:
        benchlib.stop_server(p)


def print_by_function(runs):
    """Per function, cold starts (and idle MB-s) under each policy run, for
    the functions with a cold start under any of them."""
    if not runs:
        return
    names = sorted({fn for r in runs for fn in r["by_function"]})
    print("%-18s %6s  %s" % ("function", "calls",
                             "  ".join("%-16s" % r["policy"] for r in runs)))
    for fn in names:
        cells = [r["by_function"].get(fn, {}) for r in runs]
        if not any(c.get("cold_starts") for c in cells):
            continue
        calls = max(c.get("invocations", 0) for c in cells)
        print("%-18s %6d  %s" % (fn, calls, "  ".join(
            "%3d cold %7.0f" % (c.get("cold_starts", 0), c.get("idle_mb_s", 0)) for c in cells)))


def main():
    ap = benchlib.harness_parser()
    for a in ap._actions:  # not needed to print the trace's shape
        if a.dest in ("mayfly", "out"):
            a.required = False
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--functions", type=int, default=60)
    ap.add_argument("--hours", type=float, default=2, help="trace hours measured")
    ap.add_argument("--warmup-hours", type=float, default=2,
                    help="trace hours replayed before, not counted")
    ap.add_argument("--minute-s", type=float, default=1.0,
                    help="real seconds per trace minute (a whole number: the bin is 1 minute)")
    ap.add_argument("--workers", type=int, default=24)
    ap.add_argument("--example", default=None, help="the function's code (default examples/noop-c)")
    ap.add_argument("--trace-only", action="store_true")
    ap.add_argument("--policies", default=",".join(n for n, _ in POLICIES))
    args = ap.parse_args()
    horizon = (args.warmup_hours + args.hours) * 60
    calls, kinds = make_trace(args.seed, args.functions, horizon)
    shape = trace_shape(calls, kinds, horizon)
    if args.trace_only:
        print(json.dumps(shape, indent=1))
        return 0
    if not args.mayfly or not args.out:
        ap.error("--mayfly and --out are needed (or --trace-only)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = args.example or os.path.join(root, "examples", "noop-c")
    code = benchlib.deploy_args(folder)
    code["code"] = {"zip_base64": benchlib.zip_folder(folder)}
    tmp = benchlib.scratch("mayfly-keepalive.")
    result = {"seed": args.seed, "minute_s": args.minute_s, "hours": args.hours,
              "warmup_hours": args.warmup_hours, "memory_mb": MB, "trace": shape,
              "example": os.path.basename(folder), "policies": []}
    wanted = args.policies.split(",")
    rc = 0
    for name, policy_flags in POLICIES:
        if name not in wanted:
            continue
        r = run_policy(args, name, policy_flags, calls, kinds, tmp, code)
        result["policies"].append(r)
        print("keepalive: %-9s %6d calls, %5.1f %% cold, %8.0f idle MB-s, prewarms %d used %d "
              "wasted, %d errors" % (name, r["invocations"], r["cold_pct"] or 0, r["idle_mb_s"],
                                     r["prewarms_used"], r["prewarms_wasted"], r["n_errors"]),
              flush=True)
        if r["n_errors"]:
            rc = 1
    print_by_function(result["policies"])
    by = {r["policy"]: r for r in result["policies"]}
    a, f10 = by.get("adaptive"), by.get("fixed-10")
    if a and f10 and f10["cold_starts"] and f10["idle_mb_s"]:
        result["cold_ratio"] = a["cold_starts"] / f10["cold_starts"]
        result["idle_ratio"] = a["idle_mb_s"] / f10["idle_mb_s"]
        result["target_met"] = result["cold_ratio"] <= 0.5 and result["idle_ratio"] <= 1.0
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
