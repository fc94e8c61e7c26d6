#!/usr/bin/python3
"""Turns bench/out/ (what bench/run.sh measured) into bench/RESULTS.md and
bench/latency.png: medians of the raw figures, the ratios against issue 4's
targets (met or not), and a plot of latency percentiles and of the
cold-start breakdown next to its baselines.

A row that failed or measured nothing is reported as failed; this script
fails only when it cannot write the report.
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import median, percentile  # noqa: E402

HTTP_ROWS = [
    ("nginx", "nginx 1 worker, fixed 200 (ceiling)"),
    ("fcgiwrap", "nginx + fcgiwrap, fork+exec per request"),
    ("warm-c", "mayfly warm, C (provided)"),
    ("warm-c-1cpu", "mayfly warm, C (provided) at 1,769 MB (one CPU's quota): 1 connection only"),
    ("warm-python", "mayfly warm, python3"),
    ("warm-node", "mayfly warm, nodejs"),
    ("warm-java", "mayfly warm, java17 (hello-java)"),
    ("conc-python", "mayfly warm, python3, instance_concurrency 32"),
    ("conc-node", "mayfly warm, nodejs, instance_concurrency 32"),
    # The peers (issue 19), built from their source archives.
    ("ofw-python", "of-watchdog http mode, Python upstream (Flask behind waitress)"),
    ("ofw-node", "of-watchdog http mode, Node.js upstream (node:http)"),
    ("ofw-fork", "of-watchdog fork mode (streaming), a C no-op forked per request"),
    ("rie-c", "AWS Lambda RIE, C bootstrap (examples/noop-c): 1 connection only, it fails "
     "under concurrent calls (upstream issue #97)"),
]
# Rows measured at 1 connection only.
LATENCY_ONLY = {"rie-c", "warm-c-1cpu"}
# Rows measured within another suite row (whose status they have).
ROW_OF = {"warm-c-1cpu": "warm-c"}
# Short names in the latency plot.
PLOT_LABELS = {
    "nginx": "nginx (ceiling)", "fcgiwrap": "nginx+fcgiwrap (CGI)", "warm-c": "mayfly C",
    "warm-c-1cpu": "mayfly C 1769 MB",
    "warm-python": "mayfly python3", "warm-node": "mayfly nodejs", "warm-java": "mayfly java17",
    "conc-python": "mayfly python3 ic32", "conc-node": "mayfly nodejs ic32",
    "ofw-python": "of-watchdog+Python", "ofw-node": "of-watchdog+Node.js",
    "ofw-fork": "of-watchdog fork, C", "rie-c": "Lambda RIE, C",
}
WARM_RTS = ("c", "python", "node", "java")
# The async row (bench/run.sh row_async): one server, sync and async runs
# alternating, to the same C no-op (and to a copy with max_concurrency 1).
ASYNC_ROWS = [
    ("async-sync", "sync invoke (as warm C), same server"),
    ("async-event", "async enqueue, events run meanwhile (max_concurrency 64)"),
    ("async-low", "async enqueue, max_concurrency 1 (little runs meanwhile)"),
]
# Enqueue runs whose group commits are counted: (files' name, function, label).
COMMIT_RUNS = [
    ("async-event-c32", "noop-c", "32 connections, events run meanwhile"),
    ("async-low-c32", "noop-c-low", "32 connections, max_concurrency 1"),
    ("async-event-c1", "noop-c", "1 connection, events run meanwhile"),
]
COLD = [("c", "C (provided)"), ("python", "python3"), ("node", "nodejs"), ("java", "java17")]
# The noisy row's neighbours (bench/neighbour.c), each on a server of its own.
NOISY = [
    ("spin", "spinning the CPU (4 threads)"),
    ("fork", "fork-bombing (up to its pids limit)"),
    ("api", "flooding its Runtime API (4 connections, pipelined bogus requests)"),
    ("log", "printing as fast as it can after answering"),
]
DENSITY = [("python", "python3"), ("c", "C (provided)")]
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


# ---- reading ---------------------------------------------------------------

def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def status(out, name):
    s = read(os.path.join(out, "status", name))
    return s.strip() if s else "not run"


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * UNITS[m.group(2)] if m else None


def parse_wrk(text):
    r = {"rps": None, "pct": {}, "requests": 0, "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M):
        r["pct"][int(p)] = ms(v)
    m = re.search(r"(\d+) requests in ([\d.]+(?:us|ms|s|m|h))", text)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = ms(m.group(2)) / 1e3
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def other_cpu(out, name):
    """CPU-seconds other processes used while the row ran, and its length."""
    try:
        d = json.loads(read(os.path.join(out, "load-%s.json" % name)))
        return d["other_cpu_s"], d["elapsed_s"]
    except (TypeError, ValueError, KeyError):
        return None


def f_other(v):
    return "—" if not v else "%.0f s in %.0f s" % v


def http_row(out, name, row_name=None, latency=True, throughput=True):
    """wrk's figures of a row; row_name: the suite row whose status it has
    (default: its own); latency: whether it has 1-connection runs;
    throughput: whether it has 32-connection runs."""
    row = {"name": name, "status": status(out, row_name or name), "rps": None, "pct": {},
           "runs_thr": 0,
           "runs_lat": 0, "errors": 0, "requests": 0}
    thr = [parse_wrk(read(p, "")) for p in sorted(glob.glob("%s/wrk-%s-c32-*.txt" % (out, name)))]
    lat = [parse_wrk(read(p, "")) for p in sorted(glob.glob("%s/wrk-%s-c1-*.txt" % (out, name)))]
    thr = [t for t in thr if t["rps"] is not None]
    lat = [t for t in lat if t["pct"]]
    row["runs_thr"], row["runs_lat"] = len(thr), len(lat)
    row["rps"] = median([t["rps"] for t in thr])
    row["rps_all"] = [t["rps"] for t in thr]
    row["rps_c1"] = median([t["rps"] for t in lat if t["rps"] is not None])
    for p in (50, 75, 90, 99):
        row["pct"][p] = median([t["pct"][p] for t in lat if p in t["pct"]])
    row["errors"] = sum(t["non2xx"] + t["socket_errors"] for t in thr + lat)
    row["requests"] = sum(t["requests"] for t in thr + lat)
    row["other_cpu"] = other_cpu(out, name)
    if row["status"] == "ok" and ((throughput and row["rps"] is None) or (latency and not lat)):
        row["status"] = "failed: no wrk result"
    # mayfly's rows: the server's own count of calls that did not succeed
    # (they answer 200 too, with X-Amz-Function-Error).
    before = json.loads(read(os.path.join(out, "calls-%s.before.json" % name), "null") or "null")
    after = json.loads(read(os.path.join(out, "calls-%s.after.json" % name), "null") or "null")
    if before is not None and after is not None:
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        bad = {k: v for k, v in delta.items() if k != "success" and v > 0}
        total = sum(delta.values())
        row["failed_calls"] = sum(bad.values())
        quick = sum(v for k, v in bad.items() if k != "timeout")
        said = "%s of %s calls did not succeed (%s)" % (
            f_int(row["failed_calls"]), f_int(total),
            ", ".join("%s %s" % (k, f_int(v)) for k, v in sorted(bad.items())))
        # Failures that answer at once make req/s meaningless; timeouts
        # only lower it.
        if bad and row["status"] == "ok":
            row["status"] = ("failed: %s: its req/s counts their quick failures" % said
                             if quick > 0.001 * total else "ok, but " + said)
    return row


def parse_metrics(text):
    """Prometheus text format: {series as written, name{labels}: value}."""
    res = {}
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, v = line.rpartition(" ")
        try:
            res[key] = float(v)
        except ValueError:
            pass
    return res


def commit_figures(out):
    """Per enqueue setting (COMMIT_RUNS), medians over its runs of what the
    group commits did during the wrk run: the deltas of /metrics taken just
    before and just after it, and how long its backlog took to run."""
    res = {}
    for tag, fn, _ in COMMIT_RUNS:
        runs = []
        for path in sorted(glob.glob(os.path.join(out, "%s-*.before.metrics" % tag))):
            i = os.path.basename(path)[len(tag) + 1:-len(".before.metrics")]
            before = parse_metrics(read(path))
            after = parse_metrics(read(os.path.join(out, "%s-%s.after.metrics" % (tag, i))))
            wrk = parse_wrk(read(os.path.join(out, "wrk-%s-%s.txt" % (tag, i)), ""))
            if not before or not after or not wrk.get("seconds"):
                continue

            def d(series):
                return after.get(series, 0.0) - before.get(series, 0.0)

            fs, no = '{sync="fsync"}', '{sync="no"}'
            secs = wrk["seconds"]
            n = d("mayfly_queue_commits_total" + fs)
            r = {
                "commits": n,
                "commits_per_s": div(n, secs),
                "commit_ms": div(d("mayfly_queue_commit_seconds_sum" + fs) * 1e3,
                                 d("mayfly_queue_commit_seconds_count" + fs)),
                "writes_per_commit": div(d("mayfly_queue_commit_jobs_sum" + fs),
                                         d("mayfly_queue_commit_jobs_count" + fs)),
                "events": d('mayfly_async_enqueued_total{function="%s"}' % fn),
                "busy": div(d("mayfly_queue_commit_seconds_sum" + fs), secs),
                "other_per_s": div(d("mayfly_queue_commits_total" + no), secs),
                "other_ms": div(d("mayfly_queue_commit_seconds_sum" + no) * 1e3,
                                d("mayfly_queue_commit_seconds_count" + no)),
                "requests": wrk["requests"],
            }
            r["events_per_commit"] = div(r["events"], n)
            drain = json.loads(read(os.path.join(out, "%s-%s.drain.json" % (tag, i)), "null")
                               or "null")
            if drain:
                r["backlog"] = drain["backlog"]
                r["drain_s"] = drain["seconds"]
                r["drained"] = drain["drained"]
                r["drain_rate"] = div(drain["backlog"], drain["seconds"]) \
                    if drain["backlog"] >= 1000 else None
            runs.append(r)
        fig = {"runs": len(runs), "undrained": sum(1 for r in runs if not r.get("drained", True))}
        for k in ("commits_per_s", "commit_ms", "writes_per_commit", "events_per_commit", "busy",
                  "other_per_s", "other_ms", "backlog", "drain_s", "drain_rate"):
            vals = [r[k] for r in runs if r.get(k) is not None]
            fig[k] = median(vals) if vals else None
        # Accepted events the wrk runs did not see answered (in flight when
        # wrk stopped): a handful at most, or the counts are wrong.
        fig["unanswered"] = sum(r["events"] - r["requests"] for r in runs)
        res[tag] = fig
    return res


def cold_figures(out):
    data = json.loads(read(os.path.join(out, "cold.json"), "null") or "null")
    res = {}
    for rt, _ in COLD:
        entry = (data or {}).get("runtimes", {}).get(rt)
        if not entry:
            res[rt] = {"status": "failed: " + status(out, "cold")
                       if status(out, "cold") != "ok" else "failed: not measured"}
            continue
        s = entry["samples"]
        r = {"n": len(s), "errors": len(entry["errors"]), "baseline": entry["baseline"],
             "settled_children": entry.get("settled_children"),
             "first_error": (entry["errors"][0].get("error") if entry["errors"] else None)}
        if s:
            r["total"] = median([x["total_ms"] for x in s])
            r["total_p90"] = percentile([x["total_ms"] for x in s], 0.9)
            r["sandbox"] = median([x["sandbox_ms"] for x in s])
            r["init"] = median([x["init_ms"] - x["sandbox_ms"] for x in s])
            r["first"] = median([x["duration_ms"] for x in s])
            r["rest"] = median([x["total_ms"] - x["init_ms"] - x["duration_ms"] for x in s])
        r["status"] = "ok" if len(s) >= 1 and not entry["errors"] else (
            "failed: %d of %d starts failed (%s)" % (r["errors"], r["errors"] + len(s),
                                                     r["first_error"]))
        if s and entry["errors"] and len(s) >= 0.9 * (len(s) + len(entry["errors"])):
            r["status"] = "ok, but %d starts failed (%s)" % (r["errors"], r["first_error"])
        if entry.get("unsettled"):
            r["status"] += "; %d started before the server was at rest (3 s wait)" % (
                entry["unsettled"])
        res[rt] = r
    bases = {}
    for name, b in ((data or {}).get("baselines") or {}).items():
        v = b["samples_ms"]
        bases[name] = {"n": len(v), "median": median(v), "p90": percentile(v, 0.9),
                       "errors": len(b["errors"])}
    return res, bases


def rate_figures(out):
    runs = []
    for p in sorted(glob.glob(os.path.join(out, "sandbox_rate-*.json"))):
        try:
            runs.append(json.loads(read(p)))
        except (TypeError, ValueError):
            pass
    r = {"status": status(out, "sandbox-rate"), "runs": len(runs)}
    if runs:
        r["rate"] = median([x["rate"] for x in runs])
        r["threads"] = runs[0]["threads"]
        r["creation_p50"] = median([x["creation_ms_p50"] for x in runs])
        r["spawn_p50"] = median([x["spawn_ms_p50"] for x in runs])
        r["errors"] = sum(x["errors"] for x in runs)
        r["first_error"] = next((x["first_error"] for x in runs if x["first_error"]), "")
    elif r["status"] == "ok":
        r["status"] = "failed: no result"
    return r


def density_figures(out):
    res = {}
    for rt, _ in DENSITY:
        runs = []
        for p in sorted(glob.glob(os.path.join(out, "density-%s-*.json" % rt))):
            try:
                runs.append(json.loads(read(p)))
            except (TypeError, ValueError):
                pass
        r = {"status": status(out, "density-" + rt), "runs": len(runs)}
        runs = [x for x in runs if x.get("instances_added", 0) > 0]
        if runs:
            def med(key):
                vals = [x[key] for x in runs if x.get(key) is not None]
                return median(vals) if vals else None
            r.update({
                "instances": med("instances_after"),
                "server_kb": med("server_kb_per_instance"),
                "server_pss_kb": med("server_pss_kb_per_instance"),
                "overhead_kb": med("median_overhead_kb"),
                "init_pss_kb": med("median_init_pss_kb"),
                "kmem_kb": med("median_kmem_kb"),
                "runtime_pss_kb": med("median_runtime_pss_kb"),
                "runtime_rss_kb": med("median_runtime_rss_kb"),
                "burst_non200": sum(n for x in runs for c, n in x["burst_status"].items()
                                    if c != "200"),
            })
        elif r["status"] == "ok":
            r["status"] = "failed: no result"
        res[rt] = r
    return res


def responsive_figures(out):
    """bench/responsive.py's JSON, or {} when it did not run."""
    return json.loads(read(os.path.join(out, "responsive.json"), "null") or "null") or {}


def read_json(out, name):
    """The JSON a harness wrote to OUT/NAME.json, or {} when it did not run."""
    return json.loads(read(os.path.join(out, name + ".json"), "null") or "null") or {}


def medians(out, name):
    """The medians in the JSON a harness wrote to OUT/NAME.json
    (bench/NAME.py's), or {} when it did not run."""
    doc = json.loads(read(os.path.join(out, name + ".json"), "null") or "null") or {}
    return doc.get("medians", {})


def noisy_figures(out):
    """Per neighbour: the victim's wrk figures at 1 connection with the
    neighbour idle and misbehaving (medians over runs, each pair on one
    server), how the neighbour's calls ended, and the server's own CPU
    clocks while it misbehaved (seconds of CPU per second)."""
    res = {}
    for mode, _ in NOISY:
        r = {"status": status(out, "noisy-" + mode)}
        for phase in ("idle", "on"):
            runs = [parse_wrk(read(p, "")) for p in sorted(
                glob.glob(os.path.join(out, "wrk-noisy-%s-%s-*.txt" % (mode, phase))))]
            runs = [x for x in runs if x["pct"]]
            r[phase] = {"runs": len(runs),
                        "errors": sum(x["non2xx"] + x["socket_errors"] for x in runs)}
            for p in (50, 99):
                vals = [x["pct"][p] for x in runs if p in x["pct"]]
                r[phase][p] = median(vals) if vals else None
        calls = []
        for p in sorted(glob.glob(os.path.join(out, "noisy-%s-*.json" % mode))):
            try:
                calls.append(json.loads(read(p)))
            except (TypeError, ValueError):
                pass
        r["calls"] = [c.get("status") for c in calls]
        for k in ("loop_cpu_per_s", "process_cpu_per_s", "loop_busy_per_s"):
            vals = [c[k] for c in calls if c.get(k) is not None]
            r[k] = median(vals) if vals else None
        for p in (50, 99):
            r["ratio_%d" % p] = div(r["on"][p], r["idle"][p])
        if r["status"] == "ok" and (not r["idle"]["runs"] or not r["on"]["runs"]):
            r["status"] = "failed: no wrk result"
        res[mode] = r
    return res


# ---- formatting ---------------------------------------------------------------

def f_ms(v):
    if v is None:
        return "—"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    if v >= 1:
        return "%.2f" % v
    return "%.3f" % v


def f_int(v):
    return "—" if v is None else "{:,.0f}".format(v)


def f_kb(v):
    return "—" if v is None else "%.1f" % v


def f_ratio(v):
    return "—" if v is None else ("%.3f" % v if v < 0.1 else "%.2f" % v)


def div(a, b):
    return a / b if a is not None and b not in (None, 0) else None


# ---- the plot -------------------------------------------------------------------

def plot(out, rows, cold, bases, png):
    lat = os.path.join(out, "plot-latency.dat")
    with open(lat, "w") as f:
        for r in rows:
            p = r["pct"]
            if r["runs_lat"] and all(p.get(k) for k in (50, 90, 99)):
                label = PLOT_LABELS.get(r["name"], r["name"])
                f.write('"%s" %g %g %g\n' % (label, p[50], p[90], p[99]))
    cd = os.path.join(out, "plot-cold.dat")
    with open(cd, "w") as f:
        for rt, label in COLD:
            c = cold.get(rt, {})
            if "total" in c:
                parts = [c["sandbox"], max(c["init"], 0), c["first"], max(c["rest"], 0)]
                f.write('"%s cold" %g %g %g %g 0 %g %g\n' % (
                    {"c": "C", "python": "python3", "node": "nodejs", "java": "java17"}[rt],
                    *parts, c["total"],
                    max(sum(parts), c["total"])))
            b = bases.get(c.get("baseline") or "", {})
            if b.get("median") is not None:
                f.write('"%s" 0 0 0 0 %g %g %g\n' % (c["baseline"], b["median"], b["median"],
                                                     b["median"]))
    # A log axis that starts a decade below the smallest bar, so that bar shows.
    lows = [r["pct"][50] for r in rows if r["pct"].get(50)]
    ymin = 10 ** math.floor(math.log10(min(lows) * 0.5)) if lows else 0.01
    gp = os.path.join(out, "latency.gp")
    text = """set terminal pngcairo size 1500,620 font "sans,10" noenhanced
set output "%(png)s"
set multiplot layout 1,2 margins 0.05,0.98,0.2,0.9 spacing 0.07
set style data histograms
set style fill solid 0.85 border -1
set boxwidth 0.85
set grid ytics
set key top left
set xtics rotate by -25 scale 0
set title "HTTP latency at 1 connection (wrk -t1 -c1 --latency, POST {}), median of runs"
set style histogram clustered gap 1
set logscale y
set yrange [%(ymin)g:*]
set ylabel "ms (log scale)"
plot "%(lat)s" using 2:xtic(1) title "p50" lc rgb "#4c72b0", \\
     "" using 3 title "p90" lc rgb "#dd8452", \\
     "" using 4 title "p99" lc rgb "#c44e52"
unset logscale y
set title "Cold start, invoke to response: median of each part (label: median total)\\nnext to posix_spawn + waitpid of the bare program, in the same harness"
set style histogram rowstacked
set ylabel "ms"
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set key top left
plot "%(cd)s" using 2:xtic(1) title "sandbox creation" lc rgb "#4c72b0", \\
     "" using 3 title "runtime init" lc rgb "#55a868", \\
     "" using 4 title "first call" lc rgb "#dd8452", \\
     "" using 5 title "HTTP + scheduling" lc rgb "#8172b3", \\
     "" using 6 title "baseline: posix_spawn + waitpid" lc rgb "#937860", \\
     "" using 0:8:(sprintf("%%.1f ms", $7)) with labels offset 0,0.8 notitle
unset multiplot
""" % {"png": png, "lat": lat, "cd": cd, "ymin": ymin}
    # A panel with nothing measured says so instead of failing the plot.
    empty = 'unset logscale y\nset label 9 "not measured" at graph 0.5,0.5 center\nplot [0:1] [0:1] NaN notitle\n' \
        'unset label 9\n'
    for path in (lat, cd):
        if os.path.getsize(path) == 0:
            start = text.index('plot "%s"' % path)
            end = text.index("\n", text.index(" notitle" if path == cd else '"p99"', start))
            text = text[:start] + empty + text[end + 1:]
    with open(gp, "w") as f:
        f.write(text)
    subprocess.run(["gnuplot", gp], check=True)


# ---- keep-alive policies (bench/keepalive.py) ---------------------------------------

KEEPALIVE_LABELS = {
    "fixed-1": "fixed 1 min",
    "fixed-5": "fixed 5 min",
    "fixed-10": "fixed 10 min",
    "adaptive-10": "adaptive, windows at most 10 min",
    "adaptive": "adaptive, the default (windows up to the histogram's 4 h)",
}


def keepalive_section(out, env):
    """The keep-alive row's table and its paragraph, as lines."""
    doc = read_json(out, "keepalive")
    L = ["### Keep-alive policies on a replayed trace (cold starts and idle memory)", ""]
    if not doc:
        return L + ["Not measured (status: %s)." % status(out, "keepalive"), ""]
    t = doc.get("trace", {})
    minute = doc.get("minute_s", 1)
    L.append("| policy | server flags | calls | cold starts | cold % | idle instance memory, "
             "MB-s (GB-min per trace hour) | pre-warms used / wasted | errors |")
    L.append("|---|---|---|---|---|---|---|---|")
    for r in doc.get("policies", []):
        L.append("| %s | `%s` | %s | %s | %.2f | %s (%.1f) | %s / %s | %s |" % (
            KEEPALIVE_LABELS.get(r["policy"], r["policy"]), " ".join(r["flags"]),
            f_int(r["invocations"]), f_int(r["cold_starts"]), r["cold_pct"] or 0,
            f_int(r["idle_mb_s"]), r["idle_gb_min_per_hour"], f_int(r["prewarms_used"]),
            f_int(r["prewarms_wasted"]), r["n_errors"]))
    L.append("")
    kinds = [k for k in ("rare", "timer", "poisson", "bursty", "frequent")
             if k in t.get("by_kind", {})]
    if doc.get("policies") and kinds:
        L.append("| cold starts / calls by kind of function | " +
                 " | ".join("%s (%d functions)" % (k, t["by_kind"][k]) for k in kinds) + " |")
        L.append("|---|" + "---|" * len(kinds))
        for r in doc["policies"]:
            bk = r.get("by_kind", {})
            L.append("| %s | %s |" % (KEEPALIVE_LABELS.get(r["policy"], r["policy"]), " | ".join(
                "%s / %s" % (f_int(bk.get(k, {}).get("cold_starts")),
                             f_int(bk.get(k, {}).get("invocations"))) for k in kinds)))
        L.append("")
    L.append(
        "bench/keepalive.py: a trace of %d functions (seed %s) shaped like the Azure Functions "
        "2019 trace's published distributions (Shahrad et al., ATC '20): %.0f %% of them called "
        "less than once an hour, %.0f %% more than once a minute; timers with periods of 2 "
        "minutes to 2 hours, Poisson arrivals, bursts, and frequent functions with lognormal "
        "inter-arrival times (CV 1 to 3). Replayed against a fresh server per policy (one "
        "trace minute = %g s, so `--keep-alive-bin-s` is one trace minute and `--idle-timeout` "
        "and `--keep-alive-max-s` scaled alike), every function the C no-op (%s) at %s MB. The first %g trace hours "
        "warm up (not counted); the figures are the server's own counters "
        "(mayfly_cold_starts_total, mayfly_invocations_total, "
        "mayfly_idle_instance_memory_mb_seconds_total, mayfly_prewarms_total) over the %g "
        "hours after. Status: %s." % (
            t.get("functions", 0), doc.get("seed"), 100 * t.get("share_under_once_an_hour", 0),
            100 * t.get("share_over_once_a_minute", 0), minute, doc.get("example", "noop-c"),
            doc.get("memory_mb", 128), doc.get("warmup_hours", 0), doc.get("hours", 0),
            status(out, "keepalive")))
    L.append("")
    return L


def keepalive_target(out, policy="adaptive"):
    """(measured, cold-start ratio, idle-memory ratio) of target 18 for an
    adaptive policy, or None when not measured."""
    doc = read_json(out, "keepalive")
    by = {r["policy"]: r for r in doc.get("policies", [])}
    a, f = by.get(policy), by.get("fixed-10")
    if not a or not f:
        return None
    return ("%s / %s cold starts; idle memory %s / %s MB-s (%s)" % (
        f_int(a["cold_starts"]), f_int(f["cold_starts"]), f_int(a["idle_mb_s"]),
        f_int(f["idle_mb_s"]), f_ratio(div(a["idle_mb_s"], f["idle_mb_s"]))),
        div(a["cold_starts"], f["cold_starts"]), div(a["idle_mb_s"], f["idle_mb_s"]))


def keepalive_plot(out, png):
    """Cold-start percentage against idle instance memory, one point per
    policy, as the paper plots its policies."""
    doc = read_json(out, "keepalive")
    if not doc.get("policies"):
        return
    dat = os.path.join(out, "plot-keepalive.dat")
    with open(dat, "w") as f:
        for r in doc["policies"]:
            f.write('%g %g "%s"\n' % (r["idle_gb_min_per_hour"], r["cold_pct"] or 0,
                                      KEEPALIVE_LABELS.get(r["policy"], r["policy"])))
    gp = os.path.join(out, "keepalive.gp")
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 900,560 font "sans,10" noenhanced
set output "%(png)s"
set title "Keep-alive policies on the replayed trace: cold starts against idle instance memory\\n(bench/keepalive.py; lower left is better)"
set xlabel "idle instance memory, GB-minutes per trace hour"
set ylabel "cold starts, %% of calls"
set grid
set key off
set xrange [0:*]
set yrange [0:*]
set offsets graph 0.05, graph 0.25, graph 0.1, graph 0.05
plot "%(dat)s" using 1:2 with points pt 7 ps 1.6 lc rgb "#4c72b0", \\
     "" using 1:2:3 with labels offset 1,0.8 left
""" % {"png": png, "dat": dat})
    subprocess.run(["gnuplot", gp], check=True)


# ---- issue 19: the peers, Java, instance_concurrency ---------------------------------

def issue19_targets(add, by, cold, bases, why, usable, ok):
    """Target 19's rows: mayfly's warm no-ops against of-watchdog with the
    same language's upstream (default settings, then instance_concurrency
    32), warm C against nginx (and against the estimated limit of a call that
    crosses to another process), warm C's p99, Java's cold start and warm
    throughput."""
    ng, c = by["nginx"], by["warm-c"]

    def thr(a, b):
        ra, rb = by[a], by[b]
        return ("%s / %s req/s" % (f_int(ra["rps"]), f_int(rb["rps"])),
                div(ra["rps"], rb["rps"]) if usable(ra) and usable(rb) else None)

    for rt, label, peer, plabel in (("node", "nodejs", "ofw-node", "Node.js"),
                                    ("python", "python3", "ofw-python", "Python")):
        meas, ratio = thr("warm-" + rt, peer)
        add("19", "warm %s no-op throughput / of-watchdog http mode with a %s upstream, "
            "32 connections (default settings)" % (label, plabel), meas, ratio, 1.0, ">=",
            needs="warm-%s %s" % (rt, peer), reason=why(peer, "warm-" + rt))
    for rt, label, peer, plabel in (("node", "nodejs", "ofw-node", "Node.js"),
                                    ("python", "python3", "ofw-python", "Python")):
        meas, ratio = thr("conc-" + rt, peer)
        add("19", "%s no-op with instance_concurrency 32 / of-watchdog http mode with a %s "
            "upstream, 32 connections" % (label, plabel), meas, ratio, 1.5, ">=",
            needs="conc-%s %s" % (rt, peer), reason=why(peer, "conc-" + rt))
    meas, ratio = thr("warm-c", "nginx")
    add("19", "warm C no-op throughput / nginx's fixed 200, 32 connections", meas, ratio, 0.35,
        ">=", needs="warm-c nginx", reason=why("nginx", "warm-c"))
    add("19", "the same against the estimated limit for a call that crosses to another "
        "process (0.44)", meas, ratio, 0.44, ">=", needs="warm-c nginx",
        reason=why("nginx", "warm-c"))
    # At one CPU's quota, as nginx has a CPU (bench/run.sh warm_c_one_cpu);
    # the default 128 MB function's, held by its quota, is reported beside.
    c1 = by["warm-c-1cpu"]
    add("19", "warm C p99 / nginx p99, 1 connection (the function at 1,769 MB: one CPU's "
        "quota, as nginx has one CPU)",
        "%s / %s ms" % (f_ms(c1["pct"].get(99)), f_ms(ng["pct"].get(99))),
        div(c1["pct"].get(99), ng["pct"].get(99))
        if ok(c1["status"]) and c1["pct"].get(99) and usable(ng) else None, 3, "<=",
        needs="warm-c nginx", reason=why("nginx", "warm-c-1cpu"))
    add("19", "the same at the default 128 MB (7 % of a CPU: calls back to back use it up, and "
        "the kernel holds the instance until its next 20 ms period)",
        "%s / %s ms" % (f_ms(c["pct"].get(99)), f_ms(ng["pct"].get(99))),
        div(c["pct"].get(99), ng["pct"].get(99)) if usable(c) and usable(ng) else None, None,
        "<=", needs="warm-c nginx", reason=why("nginx", "warm-c"))
    # A Java hello's cold start against a bare JVM running it (the cold row).
    jname = "java -cp hello.jar example.Hello"
    cr, b = cold.get("java", {}), bases.get(jname, {})
    add("19", "java17 cold start / bare `%s`" % jname,
        "%s / %s ms" % (f_ms(cr.get("total")), f_ms(b.get("median"))),
        div(cr.get("total"), b.get("median")) if ok(cr.get("status", "")) else None, 0.5, "<=",
        needs="cold")
    j = by["warm-java"]
    add("19", "java17 warm throughput (examples/hello-java, a POJO in and out), 32 connections",
        "%s req/s" % f_int(j["rps"]), j["rps"] if usable(j) else None, None, None,
        "req/s, not a ratio", needs="warm-java", reason=why("warm-java"))


def peers_section(by, env, chosen):
    """mayfly against each peer, side by side, as lines (those with a row
    of this run)."""
    L = ["### mayfly against the peers (same figures as above)", ""]
    L.append("| figure | mayfly | peer | mayfly / peer |")
    L.append("|---|---|---|---|")

    def line(what, a, b, key, fmt, unit, lower_better=False):
        ra, rb = by[a], by[b]
        if a not in chosen and b not in chosen:
            return
        va = ra["pct"].get(50) if key == "p50" else ra["pct"].get(99) if key == "p99" \
            else ra[key]
        vb = rb["pct"].get(50) if key == "p50" else rb["pct"].get(99) if key == "p99" \
            else rb[key]
        if not ra["status"].startswith("ok"):
            va = None
        if not rb["status"].startswith("ok"):
            vb = None
        shown_b = fmt(vb) if vb is not None else (rb["status"] if not rb["status"].startswith("ok")
                                                  else "—")
        L.append("| %s | %s | %s | %s |" % (
            what, "%s %s" % (fmt(va), unit) if va is not None else "—",
            "%s %s" % (shown_b, unit) if vb is not None else shown_b, f_ratio(div(va, vb))))

    for rt, label, peer, plabel in (("node", "nodejs", "ofw-node", "of-watchdog + Node.js"),
                                    ("python", "python3", "ofw-python", "of-watchdog + Python")):
        line("%s, 32 connections: mayfly warm / %s" % (label, plabel), "warm-" + rt, peer, "rps",
             f_int, "req/s")
        line("%s, 32 connections: mayfly with instance_concurrency 32 / %s" % (label, plabel),
             "conc-" + rt, peer, "rps", f_int, "req/s")
        line("%s, 1 connection: mayfly warm / %s" % (label, plabel), "warm-" + rt, peer,
             "rps_c1", f_int, "req/s")
        line("%s, 1 connection, p50: mayfly warm / %s" % (label, plabel), "warm-" + rt, peer,
             "p50", f_ms, "ms")
    line("C, 32 connections: mayfly warm / of-watchdog fork mode", "warm-c", "ofw-fork", "rps",
         f_int, "req/s")
    line("C, 1 connection: mayfly warm / of-watchdog fork mode", "warm-c", "ofw-fork", "rps_c1",
         f_int, "req/s")
    line("C, 1 connection: mayfly warm / Lambda RIE", "warm-c", "rie-c", "rps_c1", f_int, "req/s")
    line("C, 1 connection, p50: mayfly warm / Lambda RIE", "warm-c", "rie-c", "p50", f_ms, "ms")
    line("C, 1 connection, p99: mayfly warm / Lambda RIE", "warm-c", "rie-c", "p99", f_ms, "ms")
    L.append("")
    L.append(
        "The peers, built from their source archives (BENCH_PEERS, default ../shared/peers) "
        "with Debian's Go %s into bench/out/peers/ and never part of mayfly: OpenFaaS's "
        "of-watchdog %s and the AWS Lambda Runtime Interface Emulator %s. Each runs with its "
        "defaults on the server's CPU, its upstream or bootstrap with it, on a fresh process "
        "per row, measured as every row above. of-watchdog http mode starts its upstream "
        "(`fprocess`) and forwards each request to it: for Node.js a node:http server "
        "(bench/ofw_node.js) that parses the JSON body and awaits a no-op handler, for Python "
        "OpenFaaS's python3-http template's shape, a Flask app behind waitress (Debian's "
        "python3-flask %s, python3-waitress %s, 4 threads; bench/ofw_python.py). Fork mode "
        "(`mode=streaming`) forks and execs bench/fork_noop.c per request. The RIE runs "
        "examples/noop-c, built against runtimes/c as mayfly's warm C row runs it, as its "
        "`provided` bootstrap, and is measured at 1 connection only: it serves one call at a "
        "time and fails under concurrent calls (upstream issue #97). mayfly's "
        "instance_concurrency rows deploy the same no-ops with `--instance-concurrency 32` on a "
        "server of their own." % (
            env.get("go", "?"), (env.get("of_watchdog") or "?").split(" (")[0],
            (env.get("rie") or "?").split(" (")[0], env.get("flask", "?"),
            env.get("waitress", "?")))
    L.append("")
    return L


# ---- the report --------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", default="bench/out")
    ap.add_argument("--results", default="bench/RESULTS.md")
    ap.add_argument("--plot", default="bench/latency.png")
    ap.add_argument("--keepalive-plot", default="bench/keepalive.png")
    args = ap.parse_args()
    out = args.out_dir

    env = dict(line.split("=", 1) for line in (read(os.path.join(out, "run.env"), "") or "")
               .splitlines() if "=" in line)
    machine = json.loads(read(os.path.join(out, "machine.json"), "{}") or "{}")
    load = json.loads(read(os.path.join(out, "load.json"), "{}") or "{}")
    rows = [http_row(out, name, ROW_OF.get(name), throughput=name not in LATENCY_ONLY)
            for name, _ in HTTP_ROWS]
    by = {r["name"]: r for r in rows}
    arows = [http_row(out, name, "async", name != "async-low") for name, _ in ASYNC_ROWS]
    aby = {r["name"]: r for r in arows}
    commits = commit_figures(out)
    # The max_concurrency 1 copy is optional (BENCH_ASYNC_LOW=0 leaves it out).
    low_wanted = env.get("async_low", "1") == "1"
    cold, bases = cold_figures(out)
    rate = rate_figures(out)
    dens = density_figures(out)
    noisy = noisy_figures(out)
    resp = responsive_figures(out)

    def ok(status):
        return status.startswith("ok")

    def usable(r):
        return ok(r["status"]) and r["rps"] is not None

    ng = by["nginx"]

    # ---- ratios
    ratios = []
    # A subset of the suite's rows (BENCH_ROWS) leaves out the targets of
    # the others.
    chosen = set(env.get("rows", "nginx fcgiwrap warm async cold sandbox-rate density noisy egress "
                         "payloads kv triggers cluster propagation metering keepalive").split())
    # The warm row is each of its runtimes too (warm-c, …, alone).
    if "warm" in chosen:
        chosen.update("warm-" + rt for rt in WARM_RTS)
    if any("warm-" + rt in chosen for rt in WARM_RTS):
        chosen.add("warm")

    def why(*names):
        """The first of these HTTP rows' statuses that is not ok, as the
        reason a target was not measured (e.g. a peer's sources missing)."""
        for n in names:
            if not ok(by[n]["status"]):
                return by[n]["status"]
        return None

    def add(num, what, measured, ratio, target, cmp, note="", needs=None, reason=None):
        needs = (needs or {"1": "nginx warm", "2": "nginx warm", "3": "nginx warm", "4": "cold",
                           "5": "cold", "6": "fcgiwrap warm", "7": "density", "8": "sandbox-rate",
                           "9": "async", "10": "noisy", "11": "egress", "12": "payloads",
                           "13": "kv", "14": "triggers", "15": "propagation", "16": "cluster",
                           "17": "metering", "18": "keepalive"}[num]).split()
        if not chosen.issuperset(needs):
            return
        if target is None:
            met = "reported" if ratio is not None else reason or "failed (not measured)"
            ratios.append((num, what, measured, ratio, "—", met, note))
            return
        if ratio is None:
            met = reason or "failed (not measured)"
        else:
            met = "met" if (ratio >= target if cmp == ">=" else ratio <= target) else "not met"
        ratios.append((num, what, measured, ratio, "%s %s" % (cmp, target), met, note))

    def thr_ratio(name):
        r = by[name]
        if usable(r) and usable(ng):
            return r["rps"] / ng["rps"], "%s / %s req/s" % (f_int(r["rps"]), f_int(ng["rps"]))
        return None, "—"

    ratio, meas = thr_ratio("warm-c")
    add("1", "warm C throughput / nginx", meas, ratio, 0.5, ">=")
    c, n = by["warm-c"], ng
    p = div(c["pct"].get(50), n["pct"].get(50)) if usable(c) and usable(n) else None
    add("2", "warm C p50 / nginx p50 (1 connection)",
        "%s / %s ms" % (f_ms(c["pct"].get(50)), f_ms(n["pct"].get(50))), p, 2.5, "<=")
    for rt, label in (("python", "python3"), ("node", "nodejs")):
        ratio, meas = thr_ratio("warm-" + rt)
        add("3", "warm %s throughput / nginx" % label, meas, ratio, 0.25, ">=")
    cc = cold.get("c", {})
    bt = bases.get("posix_spawn /bin/true", {})
    add("4", "sandboxed C cold start / posix_spawn /bin/true",
        "%s / %s ms" % (f_ms(cc.get("total")), f_ms(bt.get("median"))),
        div(cc.get("total"), bt.get("median")) if ok(cc.get("status", "")) else None, 3, "<=")
    for rt, bname in (("python", "python3 -c pass"), ("node", "node -e 0")):
        cr, b = cold.get(rt, {}), bases.get(bname, {})
        add("5", "%s cold start / bare `%s`" % (dict(COLD)[rt], bname),
            "%s / %s ms" % (f_ms(cr.get("total")), f_ms(b.get("median"))),
            div(cr.get("total"), b.get("median")) if ok(cr.get("status", "")) else None, 1, "<=")
    fc = by["fcgiwrap"]
    add("6", "warm C throughput / nginx+fcgiwrap",
        "%s / %s req/s" % (f_int(c["rps"]), f_int(fc["rps"])),
        div(c["rps"], fc["rps"]) if usable(c) and usable(fc) else None, 5, ">=")
    for rt, label in DENSITY:
        d = dens[rt]
        v = d.get("server_kb") if ok(d["status"]) else None
        add("7", "server memory per idle %s instance (VmRSS)" % label,
            "%s KiB" % f_kb(v), v, 64, "<=", "KiB, not a ratio")
    for rt, label in DENSITY:
        d = dens[rt]
        v = d.get("overhead_kb") if ok(d["status"]) else None
        add("7", "sandbox overhead per idle %s instance" % label,
            "%s KiB" % f_kb(v), v, 1024, "<=", "KiB, not a ratio")
    v = rate.get("rate") if ok(rate["status"]) else None
    add("8", "sandbox creations per second (%s threads)" % rate.get("threads", 2),
        "%s /s" % f_int(v), v, 300, ">=", "per second, not a ratio")
    sy = aby["async-sync"]
    for name, what in (("async-event", "async enqueue throughput / sync warm C throughput "
                        "(same server; the events run meanwhile)"),
                       ("async-low", "async enqueue throughput, function at max_concurrency 1 "
                        "/ sync warm C throughput (little runs meanwhile)")):
        ev = aby[name]
        if name == "async-low" and not low_wanted:
            continue
        add("9", what, "%s / %s req/s" % (f_int(ev["rps"]), f_int(sy["rps"])),
            div(ev["rps"], sy["rps"]) if usable(ev) and usable(sy) else None, 0.5, ">=")
    wanted_modes = env.get("noisy_modes", " ".join(m for m, _ in NOISY)).split()
    for mode, what in NOISY:
        nz = noisy[mode]
        if mode not in wanted_modes:
            continue
        add("10", "C victim p99 (1 connection) beside a neighbour %s / beside it idle" % what,
            "%s / %s ms" % (f_ms(nz["on"][99]), f_ms(nz["idle"][99])),
            nz["ratio_99"] if ok(nz["status"]) else None, 2, "<=")

    eg = medians(out, "egress")
    add("11", "warm calls with one keep-alive request through the egress gateway / the same "
        "calls with the request at the host's cost",
        "%s calls/s" % f_int(eg.get("calls_per_s_request")), eg.get("calls_ratio_vs_direct"),
        0.8, ">=")
    add("11", "keep-alive requests per second inside one call through the gateway / the same "
        "client on the host (the stricter reading)",
        "%s / %s req/s" % (f_int(eg.get("rps_gateway")), f_int(eg.get("rps_host"))),
        eg.get("rps_ratio"), 0.8, ">=")
    pl = medians(out, "payloads")
    for rt, label in (("c", "C (provided)"), ("python3", "python3")):
        add("12", "warm %s echo, 1 KiB event and result, 32 connections: records keeping "
            "payloads (full) / not (off)" % label,
            "%s / %s req/s" % (f_int(pl.get(rt + "_full")), f_int(pl.get(rt + "_off"))),
            pl.get(rt + "_ratio"), 0.9, ">=")
    kv = medians(out, "kv")
    add("13", "KV get of a 100-byte value from inside a warm C function, p50 / the same "
        "function's no-op invoke p50 (1 connection)",
        "%s / %s µs" % (f_ms(kv.get("inside_get_p50_us_c")), f_ms(kv.get("noop_invoke_p50_us"))),
        kv.get("inside_get_over_noop_c"), 2, "<=")
    add("13", "KV reads (GET, 100 bytes) / warm C no-op sync invokes, 32 connections",
        "%s / %s req/s" % (f_int(kv.get("get_rps")), f_int(kv.get("invoke_rps"))),
        kv.get("reads_over_invokes"), 0.5, ">=")
    add("13", "KV durable writes (PUT, 100 bytes, fsync'd group commits) / warm C no-op sync "
        "invokes, 32 connections",
        "%s / %s req/s" % (f_int(kv.get("put_rps")), f_int(kv.get("invoke_rps"))),
        kv.get("writes_over_invokes"), 0.25, ">=")
    tr = medians(out, "triggers")
    add("14", "warm C no-op behind its function URL / through /v1/functions/{name}/invoke, "
        "32 connections",
        "%s / %s req/s" % (f_int(tr.get("url_rps")), f_int(tr.get("invoke_rps"))),
        tr.get("url_over_invoke"), 0.8, ">=")
    add("14", "publishes to a topic with 3 subscribers / async enqueues, 32 connections "
        "(each 202 after its fsync'd group commit; the deliveries run meanwhile, three per "
        "publish)",
        "%s / %s req/s" % (f_int(tr.get("publish_rps")), f_int(tr.get("enqueue_rps"))),
        tr.get("publish_over_enqueue"), 0.4, ">=")
    add("14", "the same with every function paused (max_concurrency 0: the events wait, "
        "so the figure is the cost of accepting alone)",
        "%s / %s req/s" % (f_int(tr.get("publish_paused_rps")),
                           f_int(tr.get("enqueue_paused_rps"))),
        tr.get("publish_over_enqueue_paused"), 0.4, ">=")
    cl = medians(out, "cluster")
    add("16", "one node on PostgreSQL / one on SQLite: async enqueues of the C no-op, events "
        "running meanwhile, 32 connections",
        "%s / %s req/s" % (f_int(cl.get("pg_enqueue_rps")), f_int(cl.get("sqlite_enqueue_rps"))),
        cl.get("pg_over_sqlite_enqueue"), 0.5, ">=")
    add("16", "one node on PostgreSQL / one on SQLite: warm C no-op sync invokes, "
        "32 connections",
        "%s / %s req/s" % (f_int(cl.get("pg_invoke_rps")), f_int(cl.get("sqlite_invoke_rps"))),
        cl.get("pg_over_sqlite_invoke"), 0.9, ">=")
    add("16", "three nodes at half a CPU each / one such node, warm sync invokes (one wrk "
        "-c32 per node, summed)",
        "%s / %s req/s" % (f_int(cl.get("nodes3_invoke_rps")), f_int(cl.get("nodes1_invoke_rps"))),
        cl.get("nodes3_over_nodes1_invoke"), 2.4, ">=")
    add("16", "the same for async enqueues, events running meanwhile",
        "%s / %s req/s" % (f_int(cl.get("nodes3_enqueue_rps")),
                           f_int(cl.get("nodes1_enqueue_rps"))),
        cl.get("nodes3_over_nodes1_enqueue"), 2.4, ">=")
    me = medians(out, "metering")
    add("17", "warm C no-op sync invokes with tenants, metering and a block budget in place "
        "/ the same in development mode, 32 connections",
        "%s / %s req/s" % (f_int(me.get("metered_rps")), f_int(me.get("plain_rps"))),
        me.get("metered_over_plain"), 0.95, ">=")
    pr = medians(out, "propagation")
    add("15", "an update made on one node, served by another (two nodes on one PostgreSQL): "
        "median ms from the PUT's 200 to the new version's answer / 1 s",
        "%s ms" % f_ms(pr.get("served_ms")), pr.get("served_over_target"), 1, "<=")
    issue19_targets(add, by, cold, bases, why, usable, ok)
    ka = keepalive_target(out)
    if ka:
        add("18", "adaptive keep-alive (the server's default) / fixed 10 minutes on a replayed "
            "trace: cold starts, with idle instance memory at most the fixed one's (its ratio "
            "in brackets)",
            ka[0], ka[1] if ka[2] is not None and ka[2] <= 1 else None, 0.5, "<=")
    ka = keepalive_target(out, "adaptive-10")
    if ka:
        add("18", "the same, adaptive windows bounded by 10 minutes (`--keep-alive-max-s 600`)",
            ka[0], ka[1] if ka[2] is not None and ka[2] <= 1 else None, 0.5, "<=")
    add("11", "cold start of a function without egress rules / with --disable-egress",
        "%s / %s ms" % (f_ms(eg.get("cold_ms_on")), f_ms(eg.get("cold_ms_off"))),
        eg.get("cold_ratio"), 1.05, "<=")

    # ---- the document
    L = []
    w = L.append
    dirty = env.get("dirty") == "1"
    w("# mayfly benchmark results")
    w("")
    w("Written by `make bench` (bench/run.sh, bench/report.py); every figure below comes from "
      "one run on one machine. Targets 1–8 are issue 4's; 9 is the async queue's; 10 is "
      "a function's protection from its neighbours'; 11 is the egress gateway's; 12 is what "
      "keeping each call's event and result costs; 13 is the key-value store's; 14 is the "
      "triggers'; 15 and 16 are the cluster's (several nodes on one PostgreSQL); 17 is "
      "metering's (tenants, usage and budgets); 18 is the adaptive keep-alive's; 19 is "
      "issue 19's (runtimes and speed: mayfly against the peers a user would pick instead, "
      "Java).")
    w("")
    w("- **Date:** %s" % env.get("date", "?"))
    w("- **Commit:** `%s`%s; bin/mayfly sha256 `%s…`" % (
        env.get("commit", "?"),
        " + uncommitted changes (%s files in %s; `git diff HEAD` sha256 `%s…`)" % (
            env.get("dirty_files", "?"), ", ".join(
                d + "/" if "." not in d else d for d in env.get("dirty_dirs", "?").split(",")),
            env.get("dirty_diff", "?")) if dirty else "",
        env.get("binary_sha256", "?")))
    w("- **Machine:** %s CPUs, %s, kernel %s, %s GiB memory, Debian %s, cgroup %s" % (
        machine.get("nproc", "?"), machine.get("model", "?"), machine.get("kernel", "?"),
        machine.get("mem_gib", "?"), machine.get("debian", "?"), machine.get("cgroup", "?")))
    w("- **Pinning:** server under test (nginx, fcgiwrap, mayfly and so its sandboxes) on CPU %s; "
      "load generator (wrk, the cold-start and density harnesses) on CPU %s" % (
          env.get("server_cpu", "0"), env.get("load_cpu", "1")))
    w("- **Load:** throughput `wrk %s`, latency `wrk %s` (POST `{}` for every row; the async "
      "enqueues add `X-Mayfly-Invocation-Type: Event`, bench/event.lua)" % (
          env.get("wrk_throughput", "?"), env.get("wrk_latency", "?")))
    peers = [(k, label) for k, label in (("of_watchdog", "of-watchdog"), ("rie", "Lambda RIE"))
             if env.get(k)]
    w("- **Versions:** nginx %s, fcgiwrap %s, wrk %s, python3 %s, node %s%s" % (
        env.get("nginx", "?"), env.get("fcgiwrap", "?"), env.get("wrk", "?"),
        env.get("python3", "?"), env.get("node", "?"),
        "".join(", %s %s" % (label, env[k]) for k, label in peers) +
        (", go %s, python3-flask %s, python3-waitress %s" % (
            env.get("go", "?"), env.get("flask", "?"), env.get("waitress", "?"))
         if peers else "")))
    if load:
        busy = load.get("other_cpu_s", 0)
        el = load.get("elapsed_s") or 1
        top = ", ".join("%s %.0f s" % (c_, t) for c_, t in load.get("other_top", []))
        w("- **Other activity during the run:** other processes used %.0f CPU-seconds in %.0f s "
          "(%.0f%% of one CPU)%s; kernel threads %.0f s.%s" % (
              busy, el, 100 * busy / el, " — " + top if top else "",
              load.get("kernel_threads_cpu_s", 0),
              " **The machine was not quiet: figures are pessimistic and noisier.**"
              if busy / el > 0.05 else ""))
    w("- **Suite time:** %s s" % env.get("elapsed_s", "?"))
    w("")
    w("![latency percentiles and cold-start breakdown](latency.png)")
    w("")
    w("## Targets")
    w("")
    w("| # | figure | measured | ratio | target | |")
    w("|---|---|---|---|---|---|")
    for num, what, meas, ratio, target, met, note in ratios:
        shown = f_ratio(ratio) if not note else (f_kb(ratio) if "KiB" in note else f_int(ratio))
        w("| %s | %s | %s | %s | %s | **%s** |" % (num, what, meas, shown, target, met))
    w("")
    w("Ratios are of medians. 7 and 8 are absolute figures (KiB, creations per second). 9 "
      "compares runs that alternate on one server, to one function (the max_concurrency 1 "
      "figure: a copy of it), at 32 connections. 10 compares runs that alternate on one "
      "server per neighbour, the neighbour idle and then misbehaving.")
    w("")
    ev, lo = aby["async-event"], aby["async-low"]
    cm, cl, c1 = (commits.get("async-event-c32", {}), commits.get("async-low-c32", {}),
                  commits.get("async-event-c1", {}))
    if "async" in chosen:
        w("**Async queue:** enqueue %s req/s with the events running meanwhile%s, sync %s req/s "
          "(32 connections, same server). One fsync'd group commit: %s ms on average, %s events "
          "(%s writes) per commit, %s commits/s%s. At 1 connection: enqueue p50 %s ms vs sync p50 "
          "%s ms (one event per commit: %s ms)." % (
              f_int(ev["rps"]),
              ", %s req/s at max_concurrency 1" % f_int(lo["rps"]) if low_wanted else "",
              f_int(sy["rps"]), f_ms(cm.get("commit_ms")), f_kb(cm.get("events_per_commit")),
              f_kb(cm.get("writes_per_commit")), f_int(cm.get("commits_per_s")),
              " (%s ms, %s events at max_concurrency 1)" % (
                  f_ms(cl.get("commit_ms")), f_kb(cl.get("events_per_commit")))
              if low_wanted else "",
              f_ms(ev["pct"].get(50)), f_ms(sy["pct"].get(50)), f_ms(c1.get("commit_ms"))))
        w("")

    w("## Raw figures")
    w("")
    w("### HTTP, warm (medians; throughput at 32 connections, latency at 1 connection)")
    w("")
    w("| row | req/s | runs | req/s, 1 connection | p50 ms | p75 ms | p90 ms | p99 ms | runs "
      "| errors | other CPU use | status |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p = r["pct"]
        w("| %s | %s | %d | %s | %s | %s | %s | %s | %d | %s | %s | %s |" % (
            dict(HTTP_ROWS)[r["name"]], f_int(r["rps"]), r["runs_thr"], f_int(r["rps_c1"]),
            f_ms(p.get(50)),
            f_ms(p.get(75)), f_ms(p.get(90)), f_ms(p.get(99)), r["runs_lat"],
            "%d of %s" % (r["errors"], f_int(r["requests"])) if r["errors"] else "0",
            f_other(r["other_cpu"]), r["status"]))
    w("")
    w("Percentiles are wrk's, which corrects for coordinated omission: a response that takes "
      "S ms where one request per I ms was the pace also counts as if requests sent during the "
      "stall had waited, so a rare stall shows in p90/p99 in proportion to the time it lasts. "
      "Every row is measured the same way.")
    w("")
    w("Errors are non-2xx answers plus socket errors (wrk), over every run of the row; a "
      "mayfly row whose calls failed on the server (they answer 200 with X-Amz-Function-Error, "
      "as Lambda's Invoke does; counted by mayfly_invocations_total) other than by a timeout "
      "in more than 0.1 % of its calls fails. Other "
      "CPU use: CPU time of processes outside the suite while the row ran; "
      "anything but a few seconds means the figures of that row were disturbed. "
      "Throughput of each run: " + "; ".join(
          "%s %s" % (r["name"], ", ".join(f_int(x) for x in r.get("rps_all", [])))
          for r in rows if r.get("rps_all")) + ".")
    w("")
    if chosen & {"ofw-node", "ofw-python", "ofw-fork", "rie-c", "conc-node", "conc-python"}:
        L.extend(peers_section(by, env, chosen))
    w("### Async invocations (one server; sync and async runs alternate)")
    w("")
    w("| row | req/s | runs | p50 ms | p75 ms | p90 ms | p99 ms | runs | errors | status |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for r in arows:
        if r["name"] == "async-low" and not low_wanted:
            continue
        p = r["pct"]
        st = r["status"]
        w("| %s | %s | %d | %s | %s | %s | %s | %d | %s | %s |" % (
            dict(ASYNC_ROWS)[r["name"]], f_int(r["rps"]), r["runs_thr"], f_ms(p.get(50)),
            f_ms(p.get(75)), f_ms(p.get(90)), f_ms(p.get(99)), r["runs_lat"],
            "%d of %s" % (r["errors"], f_int(r["requests"])) if r["errors"] else "0", st))
    w("")
    w("`POST /v1/functions/noop-c/invoke` (examples/noop-c, max_concurrency 64 as in warm C), "
      "the async rows with `X-Mayfly-Invocation-Type: Event`: 202 `{\"request_id\"}` once the "
      "event is in the queue and fsync'd. Each round runs sync, then async, then async to "
      "noop-c-low (the same code, max_concurrency 1); after each async run the suite waits "
      "until the function's queue is empty (GET /v1/functions/NAME, async_queue depth and "
      "running 0) and the server is idle, so a run's backlog never runs during the next one. "
      "With the events running meanwhile, the server's CPU does both, accepting and running: "
      "that is the figure a user sees. At max_concurrency 1 one instance runs events while "
      "they are accepted and the rest waits (it runs after the wrk run: the backlog below), "
      "so the figure is mostly the cost of accepting one. "
      "Latency at 1 connection: sync and async (events running meanwhile) only. Other CPU "
      "use while the row ran: %s. Throughput of each run: %s." % (
          f_other(other_cpu(out, "async")), "; ".join(
              "%s %s" % (r["name"], ", ".join(f_int(x) for x in r.get("rps_all", [])))
              for r in arows if r.get("rps_all"))))
    w("")
    w("| group commits during | runs | fsync'd commits/s | mean ms per commit | events per "
      "commit | writes per commit | writer busy | other commits/s (no fsync), mean ms "
      "| backlog at the end | emptied in s |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    for tag, _, label in COMMIT_RUNS:
        c = commits.get(tag, {})
        if tag == "async-low-c32" and not low_wanted:
            continue
        w("| %s | %d | %s | %s | %s | %s | %s | %s, %s | %s | %s |" % (
            label, c.get("runs", 0), f_int(c.get("commits_per_s")), f_ms(c.get("commit_ms")),
            f_kb(c.get("events_per_commit")), f_kb(c.get("writes_per_commit")),
            "—" if c.get("busy") is None else "%.0f%%" % (100 * c["busy"]),
            f_int(c.get("other_per_s")), f_ms(c.get("other_ms")), f_int(c.get("backlog")),
            f_ms(c.get("drain_s")) + (" (%s events/s)" % f_int(c["drain_rate"])
                                      if c.get("drain_rate") else "") +
            (" — **%d runs not emptied**" % c["undrained"] if c.get("undrained") else "")))
    w("")
    w("Medians over runs of the deltas of /metrics taken just before and just after each wrk "
      "run (`sync=\"fsync\"` series). A commit's time is mayfly_queue_commit_seconds: one "
      "SQLite transaction with its fsync, from the writer thread taking the batch to the commit "
      "returning. Events per commit = mayfly_async_enqueued_total / commits; writes per commit "
      "= mayfly_queue_commit_jobs (sum/count): the events accepted plus the state changes "
      "(started, done) of events that ran, written in the same transaction. Writer busy = "
      "commit seconds / run seconds. Other commits: transactions that held only state changes, "
      "without fsync. Backlog at the end: events accepted but not yet run when wrk stopped; "
      "emptied in: until the queue was empty (polled every 50 ms). Accepted events that wrk "
      "did not count as answered (in flight at its end), all runs: %s." % ", ".join(
          "%s %s" % (tag, f_int(commits.get(tag, {}).get("unanswered")))
          for tag, _, _ in COMMIT_RUNS if commits.get(tag, {}).get("runs")) if any(
          commits.get(tag, {}).get("runs") for tag, _, _ in COMMIT_RUNS) else
      "Medians over runs of /metrics deltas (not measured).")
    w("")
    w("### Cold starts (time from invoke to response, no instance; median over starts)")
    w("")
    w("| runtime | starts | total ms | p90 ms | sandbox creation | runtime init | first call "
      "| HTTP + scheduling | status |")
    w("|---|---|---|---|---|---|---|---|---|")
    for rt, label in COLD:
        c = cold.get(rt, {})
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, c.get("n", 0), f_ms(c.get("total")), f_ms(c.get("total_p90")),
            f_ms(c.get("sandbox")), f_ms(c.get("init")), f_ms(c.get("first")),
            f_ms(c.get("rest")), c.get("status", "not run")))
    w("")
    w("Parts: sandbox creation = X-Mayfly-Sandbox-Ms; runtime init = X-Mayfly-Init-Ms − "
      "X-Mayfly-Sandbox-Ms (up to the runtime's first poll for work); first call = "
      "X-Mayfly-Duration-Ms; HTTP + scheduling = total − Init − Duration. Each part's median is "
      "taken on its own, so they need not add up to the median total. Each start creates a "
      "function, invokes it once and deletes it (its instance drains before the next start).")
    w("")
    kept = ", ".join("%s %s" % (label, cold[rt]["settled_children"]) for rt, label in COLD
                     if cold.get(rt, {}).get("settled_children") is not None)
    if kept:
        w("Sandboxes the idle server kept running before each start (its children: prepared "
          "sandboxes or runtimes, if it keeps a pool): %s." % kept)
        w("")
    w("Other CPU use while the cold starts ran: %s." % f_other(other_cpu(out, "cold")))
    w("")
    w("| baseline, same harness (os.posix_spawn + os.waitpid) | runs | median ms | p90 ms |")
    w("|---|---|---|---|")
    for name, b in bases.items():
        w("| `%s` | %d | %s | %s |" % (name, b["n"], f_ms(b["median"]), f_ms(b["p90"])))
    if not bases:
        w("| (not measured) | 0 | — | — |")
    w("")
    w("### Sandbox creations per second (bench/sandbox_rate.c on src/sandbox, no server)")
    w("")
    w("| threads | runs | creations/s (median) | one creation, median ms | sandbox_spawn, "
      "median ms | errors | status |")
    w("|---|---|---|---|---|---|---|")
    w("| %s | %d | %s | %s | %s | %s | %s |" % (
        rate.get("threads", "—"), rate["runs"], f_int(rate.get("rate")),
        f_ms(rate.get("creation_p50")), f_ms(rate.get("spawn_p50")), rate.get("errors", "—"),
        rate["status"] + (" (%s)" % rate["first_error"] if rate.get("first_error") else "")))
    w("")
    w("Other CPU use meanwhile: %s. " % f_other(other_cpu(out, "sandbox-rate")) +
      "A creation is sandbox_spawn of /bin/true (namespaces, cgroup, mounts, seccomp, the "
      "Runtime API listener), waiting for it to exit, reaping and sandbox_destroy; 5 s per run.")
    w("")
    w("### Density (idle warm instances; medians over runs, and over instances within a run)")
    w("")
    w("| runtime | runs | instances | server KiB/instance (VmRSS) | server KiB/instance (Pss) "
      "| sandbox overhead KiB | of which init Pss | of which kernel memory | runtime's own Pss "
      "KiB | runtime's own RSS KiB | status |")
    w("|---|---|---|---|---|---|---|---|---|---|---|")
    for rt, label in DENSITY:
        d = dens[rt]
        w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, d["runs"], f_int(d.get("instances")), f_kb(d.get("server_kb")),
            f_kb(d.get("server_pss_kb")), f_kb(d.get("overhead_kb")),
            f_kb(d.get("init_pss_kb")), f_kb(d.get("kmem_kb")), f_kb(d.get("runtime_pss_kb")),
            f_kb(d.get("runtime_rss_kb")),
            d["status"] + ("; %d calls of the burst were not 200" % d["burst_non200"]
                           if d.get("burst_non200") else "")))
    w("")
    w("Each run starts a fresh server, deploys a no-op whose first call sleeps 1 s, calls it "
      "once, then fires %s concurrent calls so that each gets its own instance, and measures "
      "once every call has answered. Server memory per instance = (after − before) / instances "
      "added. Sandbox overhead = Pss of the instance's processes other than the runtime (its "
      "init) + the cgroup's kernel memory (v1 memory.kmem.usage_in_bytes, v2 memory.stat "
      "kernel). Other CPU use meanwhile: %s (python3), %s (C)." % (
          env.get("density", "200"), f_other(other_cpu(out, "density-python")),
          f_other(other_cpu(out, "density-c"))))
    w("")
    if "responsive" in chosen:
        w("### Responsiveness (what the end-to-end tests no longer time)")
        w("")
        w("| figure | quiet | meanwhile | |")
        w("|---|---|---|---|")
        dp, bl = resp.get("deploy", {}), resp.get("backlog", {})
        to, sp = resp.get("timeout", {}), resp.get("stop", {})
        w("| /healthz during a 35 MiB deploy, p99 / max ms | %s | %s / %s | the deploy took %s s; "
          "its longest event loop iteration ended within %s s; the loop thread's share of the "
          "deploy's CPU %s |" % (
              f_ms(dp.get("health_quiet_p99_ms")), f_ms(dp.get("health_during_p99_ms")),
              f_ms(dp.get("health_during_max_ms")), f_ms(dp.get("deploy_s")),
              dp.get("longest_iteration_le_s", "—"), f_ratio(dp.get("loop_cpu_share"))))
        w("| sync call to a function with 320 queued events (max_concurrency 4, 50 ms each), "
          "p50 / p99 ms | %s / %s | %s / %s | |" % (
              f_ms(bl.get("quiet_same_p50_ms")), f_ms(bl.get("quiet_same_p99_ms")),
              f_ms(bl.get("backlog_same_p50_ms")), f_ms(bl.get("backlog_same_p99_ms"))))
        w("| sync call to another function meanwhile, p50 / p99 ms | %s / %s | %s / %s | |" % (
            f_ms(bl.get("quiet_other_p50_ms")), f_ms(bl.get("quiet_other_p99_ms")),
            f_ms(bl.get("backlog_other_p50_ms")), f_ms(bl.get("backlog_other_p99_ms"))))
        w("| a call with a 1 s timeout answers after, median / max s | | %s / %s | |" % (
            f_ms(to.get("median_s")), f_ms(to.get("max_s"))))
        w("| SIGTERM to exit with an async event running and a 1 s grace, median / max s | | "
          "%s / %s | |" % (f_ms(sp.get("median_s")), f_ms(sp.get("max_s"))))
        errors = ["%s: %s" % (k, v["error"]) for k, v in resp.items() if "error" in v]
        w("")
        w("bench/responsive.py on one server (the stop on servers of its own), %s runs each, "
          "medians over runs; status: %s%s." % (
              env.get("runs", "3"), status(out, "responsive"),
              "; " + "; ".join(errors) if errors else ""))
        w("")
    if "egress" in chosen:
        eg = medians(out, "egress")
        w("### Egress (what the gateway costs a function)")
        w("")
        w("| figure | through the gateway | baseline | ratio / added |")
        w("|---|---|---|---|")
        w("| keep-alive HTTP requests per second, one connection, inside one call | %s | %s "
          "(the same client code on the host) | %s |" % (
              f_int(eg.get("rps_gateway")), f_int(eg.get("rps_host")),
              f_ratio(eg.get("rps_ratio"))))
        w("| warm calls per second, one keep-alive request each | %s | %s (the call without "
          "the request, plus the host's time per request) | %s |" % (
              f_int(eg.get("calls_per_s_request")),
              f_int(1 / (1 / eg["calls_per_s_none"] + 1 / eg["rps_host"]))
              if eg.get("calls_per_s_none") and eg.get("rps_host") else "—",
              f_ratio(eg.get("calls_ratio_vs_direct"))))
        w("| the same two through the relay alone (--egress-splice off): requests per second; "
          "calls per second | %s; %s | as above | %s; %s |" % (
              f_int(eg.get("rps_relay")), f_int(eg.get("calls_per_s_request_relay")),
              f_ratio(eg.get("rps_ratio_relay")), f_ratio(eg.get("calls_ratio_vs_direct_relay"))))
        w("| the server's own CPU time per keep-alive request, µs (spliced; relay alone) | %s; %s "
          "| | |" % (f_ms(eg.get("server_cpu_us_per_req_gateway")),
                      f_ms(eg.get("server_cpu_us_per_req_relay"))))
        w("| warm calls per second without a request (same function) | | %s | |" % (
            f_int(eg.get("calls_per_s_none"))))
        w("| one 128 MiB download, MB/s (spliced; relay alone) | %s; %s | %s | %s; %s |" % (
            f_int(eg.get("bulk_mb_s_gateway")), f_int(eg.get("bulk_mb_s_relay")),
            f_int(eg.get("bulk_mb_s_host")), f_ratio(eg.get("bulk_ratio")),
            f_ratio(eg.get("bulk_ratio_relay"))))
        w("| new connection: connect(), median of 200, µs | %s | %s | +%s |" % (
            f_int(eg.get("connect_us_gateway")), f_int(eg.get("connect_us_host")),
            f_int(eg.get("connect_added_us"))))
        w("| new connection: connect + first byte, median of 200, µs | %s | %s | +%s |" % (
            f_int(eg.get("first_byte_us_gateway")), f_int(eg.get("first_byte_us_host")),
            f_int(eg.get("first_byte_added_us"))))
        w("| cold start of a function without rules, median ms | %s | %s (--disable-egress) "
          "| %s |" % (f_ms(eg.get("cold_ms_on")), f_ms(eg.get("cold_ms_off")),
                      f_ratio(eg.get("cold_ratio"))))
        w("| cold start of a function with rules (the gateway's set-up), median ms | %s | %s "
          "(without rules) | +%s |" % (f_ms(eg.get("cold_ms_rules")), f_ms(eg.get("cold_ms_on")),
                                       f_ms(eg.get("cold_setup_ms"))))
        w("")
        w("bench/egress.py: a python3 function (1,769 MB) with rules for a local nginx "
          "(1 worker, `return 200`, on the load CPU) by name (`--egress-hosts`) and by address; "
          "the baseline is the same client code run by /usr/bin/python3 on the host, on the "
          "server's CPU (where the sandboxes, the server's children, run too). Each "
          "figure %s times alternated, medians; cold starts alternate between a server with the "
          "gateway and one with --disable-egress, each at rest first. Status: %s." % (
              env.get("runs", "3"), status(out, "egress")))
        w("")
    if "payloads" in chosen:
        pl = medians(out, "payloads")
        w("### Payloads in records (what keeping each call's event and result costs)")
        w("")
        w("| runtime | payloads full, req/s | payloads off, req/s | full / off |")
        w("|---|---|---|---|")
        for rt, label in (("c", "C (provided)"), ("python3", "python3")):
            w("| %s | %s | %s | %s |" % (label, f_int(pl.get(rt + "_full")),
                                         f_int(pl.get(rt + "_off")), f_ratio(pl.get(rt + "_ratio"))))
        w("")
        w("bench/payloads.py: echo functions (the event is the result), a 1 KiB JSON event, "
          "`wrk -t1 -c32` for %ss per run on the load CPU, the two copies of a runtime "
          "alternated, %s runs each, medians. Status: %s." % (
              env.get("duration", "10"), env.get("runs", "3"), status(out, "payloads")))
        w("")
    if "kv" in chosen:
        kv = medians(out, "kv")
        w("### Key-value store")
        w("")
        w("| figure | median |")
        w("|---|---|")
        for key, label in (("inside_get_p50_us_c", "get from inside a warm C function, p50 µs"),
                           ("inside_get_p99_us_c", "get from inside a warm C function, p99 µs"),
                           ("inside_get_p50_us_python3", "get from inside a warm python3 "
                            "function (import mayfly), p50 µs"),
                           ("noop_invoke_p50_us", "no-op invoke of the C function from outside, "
                            "1 connection, p50 µs"),
                           ("get_rps", "GET /v1/kv, 32 connections, req/s"),
                           ("put_rps", "PUT /v1/kv (durable), 32 connections, req/s"),
                           ("invoke_rps", "no-op sync invoke, 32 connections, req/s")):
            w("| %s | %s |" % (label, (f_int if key.endswith("_rps") else f_ms)(kv.get(key))))
        w("")
        w("bench/kv.py: a 100-byte value; the gets inside a call timed by the function itself "
          "(%s per call); `wrk -t1` on the load CPU for %ss per figure, %s runs alternated, "
          "medians. Status: %s." % (
              "2000", env.get("duration", "10"), env.get("runs", "3"), status(out, "kv")))
        w("")
    if "triggers" in chosen:
        tr = medians(out, "triggers")
        w("### Triggers")
        w("")
        w("| figure | median |")
        w("|---|---|")
        for key, label in (("invoke_rps", "no-op sync invoke, POST /v1/functions/noop/invoke"),
                           ("url_rps", "the same through its function URL, POST /url/noop/"),
                           ("enqueue_rps", "async invoke (202 once fsync'd), events running "
                            "meanwhile"),
                           ("publish_rps", "publish to a topic with 3 subscribers (202 once "
                            "the message and 3 events are fsync'd), deliveries running meanwhile"),
                           ("enqueue_paused_rps", "async invoke, function paused "
                            "(max_concurrency 0: the events wait)"),
                           ("publish_paused_rps", "publish, subscribers paused")):
            w("| %s, 32 connections, req/s | %s |" % (label, f_int(tr.get(key))))
        w("")
        w("bench/triggers.py: the C no-op; `wrk -t1 -c32` on the load CPU for %ss per figure, "
          "%s runs alternated (each after the last one's backlog drained), medians. "
          "Status: %s." % (env.get("duration", "10"), env.get("runs", "3"),
                           status(out, "triggers")))
        w("")
    if "cluster" in chosen:
        cl = medians(out, "cluster")
        w("### Several nodes on one PostgreSQL")
        w("")
        w("| figure | median |")
        w("|---|---|")
        for key, label in (("sqlite_invoke_rps", "one node on SQLite, warm sync invokes"),
                           ("pg_invoke_rps", "one node on PostgreSQL, warm sync invokes"),
                           ("sqlite_enqueue_rps", "one node on SQLite, async enqueues"),
                           ("pg_enqueue_rps", "one node on PostgreSQL, async enqueues"),
                           ("nodes1_invoke_rps", "one node at half a CPU, warm sync invokes"),
                           ("nodes3_invoke_rps", "three nodes at half a CPU each, summed"),
                           ("nodes1_enqueue_rps", "one node at half a CPU, async enqueues"),
                           ("nodes3_enqueue_rps", "three nodes at half a CPU each, summed")):
            w("| %s, 32 connections a node, req/s | %s |" % (label, f_int(cl.get(key))))
        for kind in ("invoke", "enqueue"):
            idle = [cl.get("%s_%s_server_idle" % (tag, kind)) for tag in ("sqlite", "pg")]
            if None not in idle:
                w("| one node on SQLite / on PostgreSQL, %s: share of the server CPU it left "
                  "idle | %.3f / %.3f |"
                  % ("warm sync invokes" if kind == "invoke" else "async enqueues",
                     idle[0], idle[1]))
        for n in (1, 3):
            for kind in ("invoke", "enqueue"):
                cpus = cl.get("nodes%d_%s_cpus" % (n, kind))
                per = cl.get("nodes%d_%s_cpu_ms_per_1k" % (n, kind))
                if cpus is not None and per is not None:
                    w("| %s at half a CPU, %s: CPUs the nodes' cgroups used / their CPU ms "
                      "per 1,000 requests | %.2f / %.0f |"
                      % ("one node" if n == 1 else "three nodes",
                         "warm sync invokes" if kind == "invoke" else "async enqueues",
                         cpus, per))
        w("")
        w("bench/cluster.py: the C no-op at max_concurrency 64; PostgreSQL (Debian's, fsync on); "
          "the store's rows with the node pinned to the server CPU and PostgreSQL to the load "
          "CPU, the scaling rows with each node in a cgroup of half a CPU (its sandboxes under "
          "it) and PostgreSQL on any CPU; `wrk -t1 -c32` per node on the load CPU for %ss per "
          "figure, %s runs, each after the last one's backlog drained, medians. A node that "
          "leaves its CPU idle under 32 connections waits: for its requests (wrk shares its "
          "CPU with the database) or, enqueueing, for the database's commits. Three nodes "
          "that use less than their 1.5 CPUs are held back by the box (two CPUs for them, "
          "their database and the load), not by their quota. Status: %s." % (
                                                       env.get("duration", "10"),
                                                       env.get("runs", "3"),
                                                       status(out, "cluster")))
        w("")
    if "propagation" in chosen:
        pr = medians(out, "propagation")
        w("### Propagation across nodes")
        w("")
        w("| figure | median |")
        w("|---|---|")
        for key, label in (("known_ms", "update on node A to node B showing its version, ms"),
                           ("served_ms", "update on node A to node B answering with it (its "
                            "new instance started), ms"),
                           ("served_p90_ms", "the same, 90th percentile, ms")):
            w("| %s | %s |" % (label, f_ms(pr.get(key))))
        w("")
        w("bench/propagation.py: two nodes on a throwaway PostgreSQL (tests/pg.sh), pinned "
          "to the server CPU; a python3 function whose answer is its environment's V, updated "
          "on A %s times, each time B polled from the load CPU from the PUT's 200. "
          "Status: %s." % (read_json(out, "propagation").get("updates", "?"),
                           status(out, "propagation")))
        w("")
    if "noisy" in chosen:
        w("### Noisy neighbours (a C no-op at 1 connection next to a misbehaving function)")
        w("")
        w("| the neighbour is | runs | p50 ms idle / beside it | ratio | p99 ms idle / beside it "
          "| ratio | while it misbehaves, per second: event loop busy, event loop CPU, server CPU "
          "| its calls "
          "| status |")
        w("|---|---|---|---|---|---|---|---|---|")
        for mode, what in NOISY:
            nz = noisy[mode]
            if mode not in env.get("noisy_modes", " ".join(m for m, _ in NOISY)).split():
                continue
            errors = nz["idle"]["errors"] + nz["on"]["errors"]
            w("| %s | %d | %s / %s | %s | %s / %s | %s | %s, %s, %s | %s | %s |" % (
                what, nz["on"]["runs"], f_ms(nz["idle"][50]), f_ms(nz["on"][50]),
                f_ratio(nz["ratio_50"]), f_ms(nz["idle"][99]), f_ms(nz["on"][99]),
                f_ratio(nz["ratio_99"]), f_ratio(nz["loop_busy_per_s"]),
                f_ratio(nz["loop_cpu_per_s"]), f_ratio(nz["process_cpu_per_s"]), ", ".join(str(c) for c in nz["calls"]) or "—",
                nz["status"] + ("; %d victim calls failed" % errors if errors else "")))
        w("")
        w("Each neighbour gets a fresh server with two functions: the victim (examples/noop-c "
          "with 1,769 MB, so a whole CPU's share and no quota of its own in the way, "
          "`POST {}` by `wrk %s`) and the neighbour (bench/neighbour.c, a `provided` function with "
          "the default 128 MB and pids limit). Each round measures the victim with the neighbour "
          "deployed and idle, then starts the neighbour misbehaving (an async call that lasts the "
          "run and 3 s more; the log flood answers first and prints after) and measures the victim "
          "again; ratios are of the medians over rounds. The server, and so both functions' "
          "sandboxes, share CPU %s; the load generator has CPU %s. While it misbehaves: the "
          "deltas of the server's own mayfly_event_loop_busy_seconds_sum (wall time the loop "
          "spent running callbacks), mayfly_event_loop_cpu_seconds_total and "
          "process_cpu_seconds_total, per second of misbehaviour (sandboxes not included). Its "
          "calls: how each of the neighbour's misbehaving calls ended." % (
              env.get("wrk_latency", "-t1 -c1").split(" -s ")[0], env.get("server_cpu", "0"),
              env.get("load_cpu", "1")))
        w("")
    if "keepalive" in chosen:
        L.extend(keepalive_section(out, env))
        w("![keep-alive policies: cold starts against idle memory](keepalive.png)")
        w("")
    failed = [(n, s) for n, s in sorted(
        (os.path.basename(p), read(p, "").strip())
        for p in glob.glob(os.path.join(out, "status", "*"))) if not s.startswith("ok")]
    if failed:
        w("## Failed rows")
        w("")
        for n, s in failed:
            w("- `%s`: %s" % (n, s))
        w("")
    w("## How to reproduce")
    w("")
    w("`make bench` as root on Debian 12 (it installs wrk, nginx-light, fcgiwrap and gnuplot "
      "if missing, builds, runs bench/run.sh for about an hour, and rewrites this file and "
      "latency.png; raw outputs stay in bench/out/). Knobs: BENCH_RUNS, BENCH_DURATION, "
      "BENCH_COLD_STARTS, BENCH_DENSITY, BENCH_DENSITY_RUNS, BENCH_ASYNC_LOW, "
      "BENCH_ASYNC_DRAIN_TIMEOUT, BENCH_NOISY_MODES, BENCH_UPDATES, BENCH_PEERS (the peers' "
      "source archives, default ../shared/peers), BENCH_ROWS (see bench/run.sh; a subset "
      "of rows, e.g. "
      "`BENCH_ROWS=async bench/run.sh`, writes bench/out/RESULTS.md instead of this file).")
    w("")

    try:
        plot(out, rows, cold, bases, args.plot)
    except (OSError, subprocess.CalledProcessError) as e:
        L.insert(L.index("## Targets"), "**The plot could not be drawn: %s**\n" % e)
    if "keepalive" in chosen:
        try:
            keepalive_plot(out, args.keepalive_plot)
        except (OSError, subprocess.CalledProcessError) as e:
            L.insert(L.index("## Targets"), "**The keep-alive plot could not be drawn: %s**\n" % e)
    with open(args.results, "w") as f:
        f.write("\n".join(L))
    print("\n".join(L[L.index("## Targets"):L.index("## Raw figures")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
