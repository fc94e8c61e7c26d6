"""The async queue survives kill -9: thousands of accepted events, the
server killed while it works through them (and again while it takes them
up after the restart, or while events are still arriving), and every event
that got a 202 still runs to success. Delivery is at least once, so some
run twice; the tests print how many (run pytest with -s), and write the
figures as JSON to the file MAYFLY_CRASH_REPORT names, when set."""

import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from conftest import cgroup_pids, deploy_py, get_logs, server_cgroups, unique, wait_for

EVENT_HEADERS = {"X-Mayfly-Invocation-Type": "Event"}

WORKER_PY = """
import time

def handler(event, context):
    print(context.aws_request_id, flush=True)
    time.sleep(0.02)
    return {"i": event["i"]}
"""

_local = threading.local()


def session():
    """One keep-alive session per thread."""
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def reset_session():
    _local.session = None


def enqueue(srv, name, i, key=None):
    headers = dict(EVENT_HEADERS)
    if key:
        headers["X-Mayfly-Idempotency-Key"] = key
    return session().post(f"{srv.url}/v1/functions/{name}/invoke",
                          data=json.dumps({"i": i}).encode(), headers=headers, timeout=30)


def accepted_id(r):
    assert r.status_code == 202, f"event refused: HTTP {r.status_code} {r.text}"
    rid = r.json()["request_id"]
    assert r.headers.get("X-Mayfly-Request-Id") == rid
    return rid


def queue_state(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["async_queue"]


def finished(srv, name, total):
    """How many of total events are done: neither waiting nor running."""
    q = queue_state(srv, name)
    return total - q["depth"] - q["running"]


def kill9(srv):
    """kill -9, then what the dead server left: its instances' processes
    and cgroup folders still there a moment later."""
    pid = srv.proc.pid
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.kill()  # only forgets it: the process is gone
    time.sleep(0.5)
    cgroups = server_cgroups(pid)
    procs = set()
    for d in cgroups:
        # A server starting meanwhile (another test's, beside this one)
        # removes what a dead server left: folders may go as they are read.
        try:
            subs = [x for x in d.rglob("*") if x.is_dir()]
        except OSError:
            subs = []
        for sub in [d, *subs]:
            procs |= cgroup_pids(sub)
    return {"server_pid": pid, "cgroup_dirs_left": len(cgroups), "processes_left": len(procs)}


def fetch_records(srv, ids):
    """request id -> record (None when there is none), fetched in parallel."""
    def one(rid):
        r = session().get(f"{srv.url}/v1/invocations/{rid}", timeout=30)
        if r.status_code == 404:
            return rid, None
        assert r.status_code == 200, f"record {rid}: HTTP {r.status_code} {r.text}"
        return rid, r.json()
    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, ids))


def wait_drained(srv, name, timeout):
    def drained():
        q = queue_state(srv, name)
        return q if q["depth"] == 0 and q["running"] == 0 else None
    return wait_for(f"the queue of {name} to drain", drained, timeout, interval=0.2)


def summarize(srv, name, ids, records):
    """Figures about the runs of ids: attempts, interrupted attempts, and
    runs seen in the logs (the function prints its request id)."""
    runs = {}
    for line in get_logs(srv, name, limit=100000):
        rid = line["message"].strip()
        runs[rid] = runs.get(rid, 0) + 1
    multi = [r for r in records.values() if r and r["attempts"] > 1]
    interrupted = [r for r in records.values() if r and any(
        h["status"] == "interrupted" for h in r.get("attempt_history", []))]
    bad_interrupted = [h for r in interrupted for h in r["attempt_history"]
                       if h["status"] == "interrupted" and h["error_type"] != "Mayfly.Interrupted"]
    assert not bad_interrupted, bad_interrupted
    return {
        "records_success": sum(1 for r in records.values() if r and r["status"] == "success"),
        "more_than_one_attempt": len(multi),
        "max_attempts": max((r["attempts"] for r in records.values() if r), default=0),
        "with_interrupted_attempt": len(interrupted),
        "ran_per_logs": sum(1 for rid in ids if runs.get(rid)),
        "ran_twice_or_more_per_logs": sum(1 for rid in ids if runs.get(rid, 0) > 1),
        "log_runs_of_unknown_ids": sum(n for rid, n in runs.items() if rid not in set(ids)),
    }


def report(test, figures):
    print(f"\n{test}: " + json.dumps(figures, indent=2))
    path = os.environ.get("MAYFLY_CRASH_REPORT")
    if path:
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError):
            doc = {}
        doc[test] = figures
        p.write_text(json.dumps(doc, indent=2) + "\n")


def check_all_succeeded(ids, records):
    missing = [rid for rid in ids if records.get(rid) is None]
    not_ok = {rid: records[rid]["status"] for rid in ids
              if records.get(rid) and records[rid]["status"] != "success"}
    assert not missing, f"{len(missing)} accepted events have no record, e.g. {missing[:5]}"
    assert not not_ok, f"{len(not_ok)} accepted events did not succeed: {list(not_ok.items())[:5]}"


@pytest.fixture
def crash_server(server):
    srv = server("--retry-base-ms", "100")
    name = unique("crash")
    deploy_py(srv, name, WORKER_PY, max_concurrency=8, timeout_s=10)
    return srv, name


def test_kill_9_while_running_and_while_replaying_loses_nothing(crash_server):
    srv, name = crash_server
    total = 2000
    t_start = time.monotonic()

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: accepted_id(enqueue(srv, name, i)), range(total)))
    enqueue_s = time.monotonic() - t_start
    assert len(set(ids)) == total, "two events got the same request id"
    done_at_enqueue_end = finished(srv, name, total)

    # The first kill once all are queued and 30% or more have run (the queue
    # runs while events arrive, so often more).
    wait_for("30% of the events to finish",
             lambda: finished(srv, name, total) >= total * 0.3, timeout=600, interval=0.02)
    done_at_kill1 = finished(srv, name, total)
    left1 = kill9(srv)

    srv.start()
    after_restart1 = queue_state(srv, name)
    base = total - after_restart1["depth"] - after_restart1["running"]
    # The second kill while the restarted server takes the queue up again.
    wait_for("some events to finish after the restart",
             lambda: finished(srv, name, total) >= base + total * 0.1, timeout=600,
             interval=0.02)
    done_at_kill2 = finished(srv, name, total)
    left2 = kill9(srv)

    srv.start()
    t_restart2 = time.monotonic()
    after_restart2 = queue_state(srv, name)
    wait_drained(srv, name, timeout=600)
    drain_s = time.monotonic() - t_restart2

    records = fetch_records(srv, ids)
    check_all_succeeded(ids, records)
    r = requests.get(f"{srv.url}/v1/functions/{name}/dead-letters", timeout=10)
    assert r.json()["dead_letters"] == [], r.text

    figures = {
        "events_accepted": total,
        "enqueue_seconds": round(enqueue_s, 2),
        "finished_when_enqueue_ended": done_at_enqueue_end,
        "finished_at_first_kill": done_at_kill1,
        "left_after_first_kill": left1,
        "queue_after_first_restart": {k: after_restart1[k] for k in ("depth", "running")},
        "finished_at_second_kill": done_at_kill2,
        "left_after_second_kill": left2,
        "queue_after_second_restart": {k: after_restart2[k] for k in ("depth", "running")},
        "drain_seconds_after_second_restart": round(drain_s, 2),
        "total_seconds": round(time.monotonic() - t_start, 2),
        "missing": 0,
    }
    figures.update(summarize(srv, name, ids, records))
    report("kill_9_while_running_and_replaying", figures)


def test_kill_9_while_events_arrive_keeps_every_accepted_one(crash_server):
    srv, name = crash_server
    total = 1500
    t_start = time.monotonic()
    accepted = {}  # i -> request id
    errored = []  # i of requests that got no answer
    kill_after = 600
    lock = threading.Lock()

    def send(i):
        try:
            r = enqueue(srv, name, i, key=f"crash-{i}")
        except requests.RequestException:
            reset_session()
            with lock:
                errored.append(i)
            return
        rid = accepted_id(r)
        with lock:
            accepted[i] = rid

    left = None
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(send, i) for i in range(total)]
        wait_for(f"{kill_after} events accepted", lambda: len(accepted) >= kill_after,
                 timeout=600, interval=0.005)
        left = kill9(srv)
        for f in futures:
            f.result()
    accepted_before_kill = len(accepted)
    refused = len(errored)

    srv.start()
    # A client that got no answer sends again with the same key: an event
    # the server took before it died comes back with its first id.
    with ThreadPoolExecutor(16) as pool:
        again = list(pool.map(lambda i: (i, enqueue(srv, name, i, key=f"crash-{i}")), errored))
    replayed = 0
    for i, r in again:
        accepted[i] = accepted_id(r)
        replayed += r.headers.get("X-Mayfly-Idempotent-Replay") == "1"
    # Every earlier 202 is still known under its key.
    for i in list(accepted)[:50]:
        if i in errored:
            continue
        r = enqueue(srv, name, i, key=f"crash-{i}")
        assert accepted_id(r) == accepted[i], f"key crash-{i} now names another event"
        assert r.headers.get("X-Mayfly-Idempotent-Replay") == "1"

    ids = [accepted[i] for i in range(total)]
    assert len(set(ids)) == total, "two keys share a request id"
    wait_drained(srv, name, timeout=600)
    records = fetch_records(srv, ids)
    check_all_succeeded(ids, records)

    figures = {
        "events_sent": total,
        "accepted_before_kill": accepted_before_kill,
        "no_answer_at_kill": refused,
        "no_answer_but_queued_before_the_kill": replayed,
        "left_after_kill": left,
        "total_seconds": round(time.monotonic() - t_start, 2),
        "missing": 0,
    }
    figures.update(summarize(srv, name, ids, records))
    report("kill_9_while_events_arrive", figures)
