"""CPU-aware scale-out (docs/concurrency.md, "Scale-out"): while the server and its
sandboxes keep the CPUs busy, a short call that finds no instance free
waits for a busy one instead of starting another; calls that are long, or
busy instances that stop getting through calls, start instances as before;
--scale-out eager always starts one. The tests set --busy-cpu-percent low
so that a little load counts as busy whatever else the machine runs, and
check by the server's own counters and by the order of answers."""

import threading

import pytest
import requests

from conftest import (
    assert_server_refuses,
    deploy_py,
    invoke,
    invoke_ok,
    metric,
    metrics,
    unique,
    wait_for,
)

# Each instance answers with a token of its own: distinct tokens are
# distinct instances.
SHORT = """import time, uuid
TOKEN = uuid.uuid4().hex

def handler(event, context):
    end = time.process_time() + 0.0002
    while time.process_time() < end:
        pass
    time.sleep(event.get("sleep", 0))
    return TOKEN
"""


class Load:
    """Threads calling a function back to back until stopped: keeps the
    server and its sandboxes busy. Every answer is kept."""

    def __init__(self, srv, name, threads):
        self.srv, self.name = srv, name
        self.stop_flag = threading.Event()
        self.statuses = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self):
        with requests.Session() as s:
            while not self.stop_flag.is_set():
                r = s.post(f"{self.srv.url}/v1/functions/{self.name}/invoke", data=b"{}",
                           timeout=120)
                ok = r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers
                with self.lock:
                    self.statuses.append(ok)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        for t in self.threads:
            t.join()

    def calls(self):
        with self.lock:
            return len(self.statuses)


def waits(srv, name):
    return metric(metrics(srv), "mayfly_scale_out_waits_total", function=name)


def ok_calls(srv, name):
    return metric(metrics(srv), "mayfly_invocations_total", function=name, status="success")


def test_short_calls_wait_for_a_busy_instance_and_every_call_is_answered(server):
    srv = server("--busy-cpu-percent", "5")
    name = unique("so-short")
    deploy_py(srv, name, SHORT)
    invoke_ok(srv, name)
    with Load(srv, name, 8) as load:
        wait_for("calls to wait for a busy instance", lambda: waits(srv, name) > 0, timeout=300)
    assert load.statuses and all(load.statuses), load.statuses.count(False)
    # Nothing was lost: every call the clients made ended, a success.
    assert ok_calls(srv, name) == load.calls() + 1
    # The gauge keeps the last average taken while calls ran: the CPUs
    # counted busy (at least 5%) when calls waited, and it has only moved by
    # an eighth of each later sample since.
    samples = metrics(srv)
    assert ("mayfly_cpu_busy_ratio", frozenset()) in samples
    assert metric(samples, "mayfly_cpu_busy_ratio") > 0
    assert "scale-out: CPU-aware" in srv.logs()


def test_eager_scale_out_never_waits(server):
    srv = server("--scale-out", "eager", "--busy-cpu-percent", "5")
    name = unique("so-eager")
    deploy_py(srv, name, SHORT)
    invoke_ok(srv, name)
    with Load(srv, name, 8) as load:
        wait_for("some load", lambda: load.calls() >= 400, timeout=300)
    assert all(load.statuses)
    assert waits(srv, name) == 0
    assert ok_calls(srv, name) == load.calls() + 1
    assert "scale-out: eager" in srv.logs()


def test_a_call_behind_a_stuck_instance_gets_an_instance_of_its_own(server):
    # The function's calls are short (so its calls may wait) until one
    # sleeps for a long time: a call that finds that instance busy waits
    # at most about a start's time, as the instance gets through no call,
    # and is answered long before the sleeper.
    srv = server("--busy-cpu-percent", "5")
    busy, name = unique("so-load"), unique("so-stuck")
    deploy_py(srv, busy, SHORT)
    deploy_py(srv, name, SHORT)
    warm = {invoke_ok(srv, name).text for _ in range(20)}
    assert len(warm) == 1, warm
    order = []

    def sleep():
        try:
            invoke(srv, name, {"sleep": 60}, timeout=120)
        except requests.ConnectionError:
            pass  # the server is killed at the end
        order.append("sleeper")
    sleeper = threading.Thread(target=sleep)
    with Load(srv, busy, 4):
        sleeper.start()
        wait_for("the sleeper to run", lambda: metric(metrics(srv), "mayfly_instances",
                                                      function=name, state="busy") == 1)
        r = invoke_ok(srv, name, timeout=120)
        order.append("short")
    assert order == ["short"], order
    assert sleeper.is_alive()
    assert r.text not in warm  # a new instance answered it
    srv.kill()
    sleeper.join()


def test_long_calls_never_wait_for_a_busy_instance(server):
    srv = server("--busy-cpu-percent", "5")
    busy, name = unique("so-load"), unique("so-long")
    deploy_py(srv, busy, SHORT)
    deploy_py(srv, name, SHORT)
    invoke_ok(srv, name, {"sleep": 0.5})
    with Load(srv, busy, 4):
        wait_for("the load to count as busy",
                 lambda: metric(metrics(srv), "mayfly_cpu_busy_ratio") >= 0.05, timeout=300)
        rs = []
        threads = [threading.Thread(target=lambda: rs.append(invoke(srv, name, {"sleep": 0.5},
                                                                    timeout=120)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(r.status_code == 200 for r in rs), [r.text for r in rs]
    # Four instances at once (one per call), and none of the calls waited.
    assert len({r.text for r in rs}) == 4, [r.text for r in rs]
    assert waits(srv, name) == 0


@pytest.mark.parametrize("args,mention", [
    (["--scale-out", "lazy"], "--scale-out"),
    (["--busy-cpu-percent", "4"], "--busy-cpu-percent"),
    (["--busy-cpu-percent", "101"], "--busy-cpu-percent"),
    (["--busy-cpu-percent", "x"], "--busy-cpu-percent"),
])
def test_bad_scale_out_flags_exit_2_naming_them(tmp_path, args, mention):
    assert_server_refuses(tmp_path, args, mention)
