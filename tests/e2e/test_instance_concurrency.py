"""instance_concurrency (Lambda Managed Instances' contract), the server's
side, seen through a runtime nobody here wrote the server for: a `provided`
bootstrap in plain Python that keeps AWS_LAMBDA_MAX_CONCURRENCY polls open,
one thread and one connection each, as the contract asks of any runtime.
mayfly's own runtimes have their own files (test_concurrency_*.py)."""

from pathlib import Path

import pytest
import requests

from conftest import (assert_error, deploy, executable, get_logs, get_record, instance_cgroups,
                      invoke_all, invoke_ok, unique, wait_for)

BOOTSTRAP = rb'''#!/usr/bin/python3
import http.client, json, os, sys, threading, time

host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
N = int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1"))
INSTANCE = os.urandom(8).hex()  # every sandbox's bootstrap is pid 2: this tells them apart
API = "/2018-06-01/runtime/invocation/"
TOGETHER = threading.Barrier(N)  # calls that wait here all run at once

def say(line):
    os.write(1, (line + "\n").encode())  # one write per line

def extra_polls():
    # N more polls beside this call: at least one is past the concurrency.
    # Accepted ones wait for a call that never comes; the first answer is
    # a refusal.
    got = []
    done = threading.Event()
    def poll():
        c = http.client.HTTPConnection(host, int(port))
        c.request("GET", API + "next")
        r = c.getresponse()
        r.read()
        got.append(r.status)
        done.set()
    for _ in range(N):
        threading.Thread(target=poll, daemon=True).start()
    done.wait()
    return got[0]

def worker(k):
    c = http.client.HTTPConnection(host, int(port))
    while True:
        c.request("GET", API + "next")
        r = c.getresponse()
        ev = json.loads(r.read() or b"{}")
        rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
        t0 = time.time()
        say(f"{rid} worker {k} starts {ev.get('tag')}")
        if ev.get("together"):
            TOGETHER.wait(120)
        if ev.get("untagged"):
            say("a line that names no call")
        if ev.get("spin_s"):
            end = time.thread_time() + ev["spin_s"]
            while time.thread_time() < end:
                pass
        for _ in range(ev.get("kv", 0)):
            k = http.client.HTTPConnection(host, int(port))
            k.request("POST", "/mayfly/v1/kv/" + ev["store"] + "/n/incr", b'{"by": 1}',
                      {"Lambda-Runtime-Aws-Request-Id": rid})
            assert k.getresponse().status == 200
            k.close()
        time.sleep(ev.get("sleep", 0))
        out = {"tag": ev.get("tag"), "t0": t0, "t1": time.time(), "pid": INSTANCE,
               "max": os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY"),
               "deadline": r.getheader("Lambda-Runtime-Deadline-Ms")}
        if ev.get("extra_poll"):
            out["extra_poll"] = extra_polls()
        c.request("POST", API + rid + "/response", json.dumps(out))
        a = c.getresponse()
        a.read()
        say(f"{rid} answered with HTTP {a.status}")

for k in range(N):
    threading.Thread(target=worker, args=(k,), daemon=True).start()
threading.Event().wait()
'''


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def deploy_threads(srv, n, **settings):
    name = unique("lanes")
    deploy(srv, name, {"bootstrap": executable(BOOTSTRAP)}, runtime="provided", handler=None,
           instance_concurrency=n, **settings)
    return name




def test_the_setting_is_checked_shown_and_kept(srv):
    name = unique("lanes")
    for bad in (0, 1601, "8", 2.5, True):
        r = requests.put(f"{srv.url}/v1/functions/{name}",
                         json={"runtime": "provided", "instance_concurrency": bad,
                               "code": {"zip_base64": ""}}, timeout=30)
        assert_error(r, 400, "bad_request", "instance_concurrency", "1 to 1600")
    name = deploy_threads(srv, 8)
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
    assert fn["instance_concurrency"] == 8
    # An update without it keeps it; null goes back to 1.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"timeout_s": 30}, timeout=30)
    assert r.status_code == 200 and r.json()["instance_concurrency"] == 8, r.text
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"instance_concurrency": None},
                     timeout=30)
    assert r.status_code == 200 and r.json()["instance_concurrency"] == 1, r.text
    srv.restart()
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
    assert fn["instance_concurrency"] == 1


def test_eight_slow_calls_share_one_instance_and_overlap(srv):
    name = deploy_threads(srv, 8)
    rs = invoke_all(srv, name, [{"tag": i, "together": True, "sleep": 0.2} for i in range(8)])
    outs = []
    for i, r in enumerate(rs):
        assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
        out = r.json()
        assert out["tag"] == i  # its own result
        assert out["max"] == "8"
        outs.append((out, r.headers["X-Mayfly-Request-Id"]))
    assert len({o["pid"] for o, _ in outs}) == 1, "the eight calls ran on one instance"
    # They overlap: every call started before every other one ended.
    assert max(o["t0"] for o, _ in outs) < min(o["t1"] for o, _ in outs)
    recs = [get_record(srv, rid) for _, rid in outs]
    assert sum(1 for rec in recs if rec["cold_start"]) <= 8
    for (out, rid), rec in zip(outs, recs):
        assert rec["status"] == "success"
        assert rec["billed_ms"] >= 200 and rec["memory_mb"] == 128 and rec["max_rss_kb"] > 0
        assert rec["cpu_ms"] is not None and rec["cpu_ms"] >= 0
        # Its own lines, and none of the others'.
        lines = [x["message"] for x in get_logs(srv, name, rid)]
        assert any(f"starts {out['tag']}" in m for m in lines), lines
        others = [m for m in lines if " starts " in m and f"starts {out['tag']}" not in m]
        assert not others, others
        assert any(m.startswith("END RequestId: " + rid) for m in lines)
    # The deadlines are each call's own.
    assert len({o["deadline"] for o, _ in outs}) >= 1


def test_the_cpu_of_calls_in_flight_together_is_shared_between_them(srv):
    name = deploy_threads(srv, 2, memory_mb=3538)  # two vCPUs' worth: no cap in the way
    rs = invoke_all(srv, name, [{"tag": "spin", "together": True, "spin_s": 0.6},
                              {"tag": "idle", "together": True, "sleep": 0.6}])
    recs = [get_record(srv, r.headers["X-Mayfly-Request-Id"]) for r in rs]
    for r in rs:
        assert r.status_code == 200, r.text
    # The instance used at least the spinner's 600 ms of CPU; the two calls
    # ran together, so each got a part of it, and together all of it.
    total = recs[0]["cpu_ms"] + recs[1]["cpu_ms"]
    assert total >= 550, recs
    assert recs[1]["cpu_ms"] > 0, "the sleeping call had its share"


def test_one_calls_timeout_leaves_the_others_and_the_instance(srv):
    name = deploy_threads(srv, 8, timeout_s=5)
    # Warm first: a deadline counts from acceptance, and a slow cold start
    # could fail the slow call before it ever ran (then no late answer).
    invoke_ok(srv, name, {"tag": "warm"})
    events = [{"tag": i, "sleep": 0.5} for i in range(7)] + [{"tag": "slow", "sleep": 12}]
    # On a loaded machine the slow call's deadline may pass before the
    # runtime polls for it (it never runs, so no late answer): then again.
    for _ in range(3):
        rs = invoke_all(srv, name, events)
        pids = set()
        for r in rs[:7]:
            assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
            pids.add(r.json()["pid"])
        slow = rs[7]
        assert slow.headers.get("X-Mayfly-Function-Error") == "Unhandled"
        assert "Task timed out after 5.00 seconds" in slow.json()["errorMessage"]
        rec = get_record(srv, slow.headers["X-Mayfly-Request-Id"])
        assert rec["status"] == "timeout"
        if rec["queue_ms"] is not None:
            break
    else:
        pytest.fail(f"the slow call never reached the runtime in three tries: {rec}")
    # The runtime's late answer is refused, and the instance goes on.
    wait_for(f"the late answer to {rec}", lambda: [x for x in get_logs(srv, name)
                                                   if "answered with HTTP 410" in x["message"]])
    after = invoke_ok(srv, name, {"tag": "after"}).json()
    assert after["pid"] in pids
    assert not get_record(srv, invoke_ok(srv, name, {}).headers["X-Mayfly-Request-Id"])[
        "cold_start"]


def test_an_instance_whose_every_lane_timed_out_is_replaced(srv):
    name = deploy_threads(srv, 2, timeout_s=1)
    first = invoke_ok(srv, name, {"tag": "warm"}).json()["pid"]
    rs = invoke_all(srv, name, [{"sleep": 600}, {"sleep": 600}])
    for r in rs:
        assert "Task timed out" in r.json()["errorMessage"], r.text
    nxt = invoke_ok(srv, name, {"tag": "next"})
    assert nxt.json()["pid"] != first
    assert get_record(srv, nxt.headers["X-Mayfly-Request-Id"])["cold_start"]


def test_polls_past_the_concurrency_are_refused(srv):
    name = deploy_threads(srv, 3)
    # Inside a call, up to 2 polls wait and 1 call runs: of 3 more polls,
    # one at least is one too many.
    out = invoke_ok(srv, name, {"extra_poll": True}).json()
    assert out["extra_poll"] == 409


def test_lines_naming_no_call_go_to_the_function_not_to_a_call(srv):
    name = deploy_threads(srv, 4)
    rs = invoke_all(srv, name, [{"tag": i, "together": True, "untagged": i == 0} for i in range(4)])
    for r in rs:
        assert r.status_code == 200, r.text
    line = wait_for("the untagged line", lambda: [x for x in get_logs(srv, name)
                                                  if x["message"] == "a line that names no call"])
    # With four calls in flight it could be anyone's: it is nobody's.
    assert line[0]["request_id"] in ("", None), line


def test_the_scheduler_fills_an_instance_before_starting_another(srv):
    name = deploy_threads(srv, 4)
    rs = invoke_all(srv, name, [{"tag": i, "together": True} for i in range(8)])
    pids = {r.json()["pid"] for r in rs}
    assert len(pids) == 2, pids
    # max_concurrency bounds calls, not instances: 4 at once with 4 lanes is one instance.
    name = deploy_threads(srv, 4, max_concurrency=4)
    rs = invoke_all(srv, name, [{"tag": i, "together": True} for i in range(8)])
    assert {r.status_code for r in rs} <= {200, 429}
    ok = [r for r in rs if r.status_code == 200]
    assert len({r.json()["pid"] for r in ok}) == 1


def test_the_platform_api_counts_each_request_for_the_call_it_names(srv):
    store = unique("kv")
    name = deploy_threads(srv, 4, permissions=[f"kv:{store}"])
    invoke_ok(srv, name, {"tag": "warm"})
    rs = invoke_all(srv, name, [{"tag": i, "kv": i + 1, "store": store, "sleep": 1}
                              for i in range(4)])
    for i, r in enumerate(rs):
        assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
        rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
        assert rec["kv_ops"] == i + 1, (i, rec)


def cpu_quota(dirs):
    """The (quota, period) of a sandbox's CPU, v1 or v2."""
    for d in dirs:
        quota, period = Path(d) / "cpu.cfs_quota_us", Path(d) / "cpu.cfs_period_us"
        if quota.exists():
            return int(quota.read_text()), int(period.read_text())
        cpu_max = Path(d) / "cpu.max"
        if cpu_max.exists():
            q, p = cpu_max.read_text().split()
            return int(q), int(p)
    raise AssertionError(f"no CPU quota file in {dirs}")


def test_an_instance_of_many_lanes_gets_each_calls_cpu_share(srv):
    # Each call is billed its memory's worth: an instance serving 4 at once
    # gets 4 shares of CPU (4 x 128 MB of 1769 MB per CPU), not one.
    before = {d.name for d in instance_cgroups(srv.proc.pid)}
    name = deploy_threads(srv, 4, memory_mb=128)
    invoke_ok(srv, name, {})
    dirs = wait_for("the instance's cgroup", lambda: [
        d for d in instance_cgroups(srv.proc.pid) if d.name not in before])
    q, p = cpu_quota(dirs)
    assert q == pytest.approx(p * 4 * 128 / 1769, rel=0.02), (q, p)


SLOW_START = rb'''#!/usr/bin/python3
import http.client, json, os, time

# Each instance says when its runtime began and when it was ready to work.
t0 = time.time()
time.sleep(0.5)
t1 = time.time()
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
c = http.client.HTTPConnection(host, int(port))
while True:
    c.request("GET", "/2018-06-01/runtime/invocation/next")
    r = c.getresponse()
    r.read()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    time.sleep(2)
    c.request("POST", "/2018-06-01/runtime/invocation/" + rid + "/response",
              json.dumps({"started": t0, "ready": t1}))
    c.getresponse().read()
'''


def test_starts_beyond_max_starting_wait_for_one_to_finish(server):
    srv = server("--max-starting", "1")
    name = unique("starts")
    deploy(srv, name, {"bootstrap": executable(SLOW_START)}, runtime="provided", handler=None,
           max_concurrency=4)
    rs = invoke_all(srv, name, [{} for _ in range(4)])
    spans = set()
    for r in rs:
        assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
        spans.add((r.json()["started"], r.json()["ready"]))
    # One start at a time: no instance began before another was ready.
    spans = sorted(spans)
    assert len(spans) >= 2, spans
    for (s0, r0), (s1, _) in zip(spans, spans[1:]):
        assert s1 >= r0, spans
