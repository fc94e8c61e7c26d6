"""Scheduling: calls beyond max_concurrency queue and then get 429, idle
instances stop (process and cgroup), and a server that stops leaves no
process, cgroup or mount behind."""

import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import (ECHO_PY, assert_error, cgroup_pids, deploy_py, get_record, healthy,
                      instance_cgroups, invoke, invoke_ok, metric, metrics, proc_cmdline,
                      server_cgroups, unique, wait_for)

# Sleeps as long as the event says; says when it started and ended, by the
# machine's clock (the sandbox shares it).
SLEEPS = """
import time

def handler(event, context):
    started = time.time()
    time.sleep(event.get("sleep", 0))
    return {"i": event.get("i"), "started": started, "ended": time.time()}
"""


def test_calls_beyond_max_concurrency_queue_then_get_429(server):
    srv = server("--max-queue", "2")
    name = unique("busy")
    # A long timeout: the deadlines of the queued calls are far off when the
    # server is stopped at the end.
    deploy_py(srv, name, SLEEPS, max_concurrency=1, timeout_s=600)

    results = [None] * 5

    def call(i, sleep=0):
        try:
            results[i] = invoke(srv, name, {"i": i, "sleep": sleep}, timeout=120)
        except requests.RequestException as e:
            results[i] = e

    # The first call holds the one instance for 5 s; the other four are
    # sent once it runs: two wait in the queue, two are refused.
    first = threading.Thread(target=call, args=(0, 5))
    first.start()
    wait_for("the first call to run",
             lambda: metric(metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
    threads = [threading.Thread(target=call, args=(i,)) for i in range(1, 5)]
    for t in threads:
        t.start()
    for t in [first] + threads:
        t.join(180)
    for r in results:
        assert isinstance(r, requests.Response), f"a call failed outright: {r!r}"

    ok = [r for r in results if r.status_code == 200]
    throttled = [r for r in results if r.status_code == 429]
    assert len(ok) + len(throttled) == 5, [(r.status_code, r.text) for r in results]
    # One runs, two wait in the queue: three complete, one after another.
    assert len(ok) >= 2, [(r.status_code, r.text) for r in results]
    for r in ok:
        assert "X-Mayfly-Function-Error" not in r.headers, r.text
    runs = sorted((r.json() for r in ok), key=lambda x: x["started"])
    assert runs[0]["i"] == 0, runs
    for before, after in zip(runs, runs[1:]):
        assert after["started"] >= before["ended"], f"queued calls did not wait: {runs}"
    assert throttled, "no call was throttled with a queue of 2 and 5 concurrent calls"
    for r in throttled:
        assert_error(r, 429, "throttled")
        assert int(r.headers.get("Retry-After", "0")) >= 1, dict(r.headers)

    # Each throttled call is on record.
    def throttled_records():
        resp = requests.get(f"{srv.url}/v1/invocations",
                            params={"function": name, "status": "throttled"}, timeout=10)
        assert resp.status_code == 200, resp.text
        recs = resp.json()["invocations"]
        return recs if len(recs) >= len(throttled) else None
    recs = wait_for("the throttled records", throttled_records)
    assert all(rec["status"] == "throttled" and rec["function"] == name for rec in recs)
    ids = {r.headers.get("X-Mayfly-Request-Id") for r in throttled} - {None}
    assert ids <= {rec["request_id"] for rec in recs}
    # Nothing waits any more: a stop is prompt (not held until the queued
    # calls' deadlines would have passed).
    srv.stop()


def instance_processes(srv):
    """pid -> cmdline of the processes in the server's instance cgroups."""
    procs = {}
    for d in instance_cgroups(srv.proc.pid):
        for pid in cgroup_pids(d):
            procs[pid] = proc_cmdline(pid)
    return procs


def test_idle_instances_stop_with_their_process_and_cgroup(server):
    # Long enough for the test to find the instance first on any machine;
    # the fixed keep-alive, which --idle-timeout sets.
    srv = server("--keep-warm", "fixed", "--idle-timeout", "5")
    name = unique("idle")
    deploy_py(srv, name, ECHO_PY)
    sent = time.monotonic()
    r = invoke_ok(srv, name)
    assert r.headers["X-Mayfly-Cold-Start"] == "1"

    dirs = instance_cgroups(srv.proc.pid)
    assert dirs, ("no instance cgroup found under the server's mayfly cgroup folders "
                  f"{server_cgroups(srv.proc.pid)}")
    procs = instance_processes(srv)
    assert procs, f"no process in the instance cgroups {dirs}"
    assert any("bootstrap" in (c or "") for c in procs.values()), procs

    # Gone after the idle timeout, and not before: the server holds it 5 s
    # from the end of the call, which came after the request was sent.
    wait_for("the idle instance's cgroups to go", lambda: not any(d.exists() for d in dirs),
             timeout=60, interval=0.01)
    assert time.monotonic() - sent >= 5.0, "the instance stopped before its idle timeout"
    left = {pid: proc_cmdline(pid) for pid in procs if proc_cmdline(pid) == procs[pid]}
    assert not left, f"processes of the stopped instance are still running: {left}"

    r = invoke_ok(srv, name)
    assert r.headers["X-Mayfly-Cold-Start"] == "1", "the call after the idle stop was warm"
    healthy(srv)


def mountinfo():
    return Path("/proc/self/mountinfo").read_text().splitlines()


@pytest.mark.serial  # compares the machine's mounts before and after
def test_shutdown_leaves_no_process_cgroup_or_mount_behind(server):
    mounts_before = mountinfo()
    srv = server()
    pid = srv.proc.pid
    names = [unique("stop-a"), unique("stop-b")]
    for n in names:
        deploy_py(srv, n, ECHO_PY)
        rid = invoke_ok(srv, n).headers["X-Mayfly-Request-Id"]
        get_record(srv, rid)

    cgroups = server_cgroups(pid)
    instances = instance_cgroups(pid)
    procs = instance_processes(srv)
    assert len({d.name for d in instances}) >= 2, f"expected two instances: {instances}"
    # A runtime in each instance (found through the instance cgroups: a
    # runtime started ahead as a zygote shows its start-up environment in
    # /proc, not its function's).
    runtimes = {p: c for p, c in procs.items() if "bootstrap" in c}
    assert len(runtimes) >= 2, f"expected a runtime process per function: {procs}"
    mounts_during = mountinfo()

    srv.stop()  # SIGTERM; asserts exit 0

    left_cgroups = [str(d) for d in cgroups + instances if d.exists()]
    assert not left_cgroups, f"cgroups left behind: {left_cgroups}"
    left_procs = {p: c for p, c in procs.items() if proc_cmdline(p) == c}
    assert not left_procs, f"instance processes left behind: {left_procs}"
    assert not [p for p, c in runtimes.items() if proc_cmdline(p) == c], \
        "runtime processes of the functions survived"
    for line in mountinfo():
        assert str(srv.workdir) not in line, f"a mount of the server's is left behind: {line}"
    new = set(mountinfo()) - set(mounts_before)
    ours = [m for m in new if m in set(mounts_during)]
    assert not ours, f"mounts made while the server ran are still there: {ours}"
