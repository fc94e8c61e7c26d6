"""An idle instance is frozen until its next call, as Lambda freezes an
environment between calls; a call is billed the CPU used between its
hand-over and its answer; a runtime's CPU is capped to its memory's share
once it has initialised."""

import os
import time
from pathlib import Path

import pytest

from conftest import (
    cgroup_frozen,
    deploy_py,
    get_record,
    instance_cgroups,
    invoke_ok,
    unique,
    wait_for,
)


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


# A handler that, when asked, leaves a process spinning after its answer.
SPINS_AFTER = """
import os
def handler(event, context):
    if event.get("spin") and os.fork() == 0:
        while True:
            pass
    return "ok"
"""


def cgroups_of(srv, name, before):
    """The instance cgroup folders that appeared for name's one instance."""
    return wait_for(f"an instance of {name}",
                    lambda: [d for d in instance_cgroups(srv.proc.pid) if d.name not in before],
                    timeout=30)


def cpu_usage_ns(dirs):
    """The sandbox's CPU time: v1's cpuacct.usage, or v2's cpu.stat usage_usec
    (v1's cpu controller has a cpu.stat too, without it)."""
    for d in dirs:
        f = Path(d) / "cpuacct.usage"
        if f.exists():
            return int(f.read_text())
    for d in dirs:
        f = Path(d) / "cpu.stat"
        if f.exists():
            stat = dict(line.split() for line in f.read_text().splitlines())
            if "usage_usec" in stat:
                return int(stat["usage_usec"]) * 1000
    raise AssertionError(f"no CPU usage file in {dirs}")


def fully_frozen(dirs):
    """Frozen through and through (v1 says FREEZING while a task is still
    on its way; v2's cgroup.events says frozen 1 once every one is)."""
    for d in dirs:
        if (Path(d) / "freezer.state").exists():
            return (Path(d) / "freezer.state").read_text().strip() == "FROZEN"
        if (Path(d) / "cgroup.events").exists():
            return "frozen 1" in (Path(d) / "cgroup.events").read_text()
    return False


def test_an_idle_instance_is_frozen_and_thawed_for_its_next_call(srv):
    name = unique("frozen")
    before = {d.name for d in instance_cgroups(srv.proc.pid)}
    deploy_py(srv, name, SPINS_AFTER)
    invoke_ok(srv, name, {})
    dirs = cgroups_of(srv, name, before)
    assert wait_for("the idle instance to be frozen", lambda: cgroup_frozen(dirs), timeout=30)
    r = invoke_ok(srv, name, {})
    assert r.headers["X-Mayfly-Cold-Start"] == "0", "a frozen instance still serves calls"


def test_a_process_left_spinning_uses_no_cpu_while_idle_and_is_not_billed(srv):
    name = unique("spinner")
    before = {d.name for d in instance_cgroups(srv.proc.pid)}
    deploy_py(srv, name, SPINS_AFTER)
    invoke_ok(srv, name, {"spin": True})
    dirs = cgroups_of(srv, name, before)
    wait_for("the idle instance to be frozen", lambda: fully_frozen(dirs), timeout=30)
    # Frozen, the spinner gets no CPU at all: the reading does not move.
    first = cpu_usage_ns(dirs)
    time.sleep(0.5)
    assert cpu_usage_ns(dirs) == first
    # The next call is billed its own CPU, not what the spinner would have
    # burnt while frozen: at most what the call's time allows (with the
    # spinner thawed beside it on every CPU, that time on each).
    r = invoke_ok(srv, name, {})
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["cpu_ms"] <= rec["duration_ms"] * (os.cpu_count() or 1) + 1, rec


def test_a_runtimes_cpu_is_capped_to_its_memorys_share_after_init(srv):
    name = unique("capped")
    before = {d.name for d in instance_cgroups(srv.proc.pid)}
    deploy_py(srv, name, SPINS_AFTER, memory_mb=128)
    invoke_ok(srv, name, {})
    dirs = cgroups_of(srv, name, before)
    for d in dirs:
        quota, period = Path(d) / "cpu.cfs_quota_us", Path(d) / "cpu.cfs_period_us"
        if quota.exists():
            q, p = int(quota.read_text()), int(period.read_text())
            break
        cpu_max = Path(d) / "cpu.max"
        if cpu_max.exists():
            qs, ps = cpu_max.read_text().split()
            q, p = int(qs), int(ps)
            break
    else:
        pytest.fail(f"no CPU quota file in {dirs}")
    # 128 MB of 1769 MB per CPU.
    assert q == pytest.approx(p * 128 / 1769, rel=0.02), (q, p)
