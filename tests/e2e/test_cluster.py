"""Three nodes sharing one PostgreSQL (issue: several machines), on
loopback ports of this machine: the node list, any node serving any
function, idempotency keys across nodes, a schedule firing once however
many nodes run it, a KV counter incremented from functions on all three,
and a node killed with SIGKILL in the middle of 2,000 async events, whose
events the others take over after its lease.

The functions and the schedule are made on the first node before the
others start, so that each node has them from its start; how a change
made later reaches the other nodes is test_cluster_changes.py's part.
The lease is 3 s rather than 15, for a shorter wait after the kill; no
test here bounds how long anything takes, only what ends up true."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import database, deploy_py, get_record, invoke_ok, kv_counter_py, unique, wait_for

T0 = "2026-03-28T12:00:00Z"

ECHO_SLOW = """
import time
def handler(event, context):
    time.sleep(0.05)
    return {"n": event.get("n")}
"""

COUNTER = kv_counter_py("cluster-counter")

FN_SLOW, FN_COUNTER, FN_TICK, SCHEDULE = "cl-slow", "cl-counter", "cl-tick", "cl-every-minute"


def node_args(url):
    return ("--store", url, "--lease-s", "3", "--test-clock", T0, "--sandbox-pool", "0",
            "--zygotes", "0", "--retry-base-ms", "200")


@pytest.fixture(scope="module")
def nodes(pg, module_server_factory):
    url = database(pg, "mayfly_cluster")
    a = module_server_factory(*node_args(url))
    deploy_py(a, FN_SLOW, ECHO_SLOW, max_concurrency=8)
    deploy_py(a, FN_COUNTER, COUNTER, permissions=["kv:cluster-counter"])
    deploy_py(a, FN_TICK, "def handler(event, context):\n    return 'tick'\n")
    r = requests.put(f"{a.url}/v1/schedules/{SCHEDULE}",
                     json={"expression": "rate(1 minute)", "function": FN_TICK}, timeout=60)
    assert r.status_code == 201, r.text
    b = module_server_factory(*node_args(url))
    c = module_server_factory(*node_args(url))
    return [a, b, c]


def cluster_nodes(srv):
    r = requests.get(f"{srv.url}/v1/cluster/nodes", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_every_node_lists_the_three(nodes):
    ids = set()
    for srv in nodes:
        doc = cluster_nodes(srv)
        alive = [n for n in doc["nodes"] if n["state"] == "alive"]
        assert len(alive) == 3, doc
        assert {n["address"] for n in alive} == {f"127.0.0.1:{s.port}" for s in nodes}, doc
        assert [n["id"] for n in doc["nodes"] if n["self"]] == [doc["self"]]
        assert doc["lease_s"] == 3
        ids.add(doc["self"])
        for n in alive:
            assert n["started"] and n["last_heartbeat"] and n["left"] is None, n
    assert len(ids) == 3
    # The CLI's table, from the second node.
    out = nodes[1].cli("nodes")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "ADDRESS", "STATE"], out.stdout
    assert len(lines) == 4 and sum("(this)" in x for x in lines) == 1, out.stdout
    assert all(" alive " in x for x in lines[1:]), out.stdout


def test_any_node_serves_a_function_made_on_another(nodes):
    for srv in nodes:
        assert invoke_ok(srv, FN_SLOW, {"n": srv.port}).json() == {"n": srv.port}


def test_an_idempotency_key_holds_across_nodes(nodes):
    key = unique("key")
    rids = []
    for srv in nodes:
        r = requests.post(f"{srv.url}/v1/functions/{FN_SLOW}/invoke", json={"n": 1},
                          headers={"X-Mayfly-Invocation-Type": "Event",
                                   "X-Mayfly-Idempotency-Key": key}, timeout=60)
        assert r.status_code in (200, 202), r.text
        rids.append(r.json()["request_id"])
    assert len(set(rids)) == 1, rids
    assert get_record(nodes[2], rids[0], timeout=120)["status"] in ("queued", "running",
                                                                    "success")


def test_a_schedule_fires_once_per_due_time_with_three_nodes(nodes):
    # Every node's clock moves on a minute: each finds two due times (the
    # start and a minute later) and tries to fire them; each fires once.
    for srv in nodes:
        r = requests.post(f"{srv.url}/v1/test/clock", json={"advance_s": 60}, timeout=60)
        assert r.status_code == 200, r.text
    fires = []
    for srv in nodes:
        r = requests.get(f"{srv.url}/v1/schedules/{SCHEDULE}", timeout=60)
        assert r.status_code == 200, r.text
        fires.append(sorted(f["due"] for f in r.json()["fires"]))
    assert fires[0] == ["2026-03-28T12:00:00Z", "2026-03-28T12:01:00Z"], fires
    assert fires[1] == fires[0] and fires[2] == fires[0], fires

    def calls():
        r = requests.get(f"{nodes[0].url}/v1/functions/{FN_TICK}/invocations",
                         params={"limit": 100}, timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()["invocations"]
        return got if len(got) >= 2 and all(x["status"] == "success" for x in got) else None
    got = wait_for("the schedule's two calls", calls, timeout=120)
    assert len(got) == 2, got


def test_a_kv_counter_incremented_from_all_nodes_ends_exact(nodes):
    per_call, plan = 125, [0, 0, 0, 1, 1, 1, 2, 2]  # eight calls, 1,000 increments
    results, errors = [], []

    def call(i):
        try:
            results.append(invoke_ok(nodes[i], FN_COUNTER, {"n": per_call}, timeout=300).json())
        except Exception as e:  # reported below, with every other failure
            errors.append(repr(e))

    threads = [threading.Thread(target=call, args=(i,)) for i in plan]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    seen = sorted(v for got in results for v in got)
    assert seen == list(range(1, 1001))
    for srv in nodes:
        r = requests.get(f"{srv.url}/v1/kv/cluster-counter/n", timeout=60)
        assert r.status_code == 200 and r.content == b"1000", r.text


def test_a_node_killed_during_2000_events_loses_none(nodes):
    a, b, c = nodes
    total = 2000
    accepted = {}              # request id -> the node that accepted it
    lock = threading.Lock()
    killed = threading.Event()

    def send(i):
        for srv in (nodes[i % 3], a, b):
            if srv is c and killed.is_set():
                continue
            try:
                r = requests.post(f"{srv.url}/v1/functions/{FN_SLOW}/invoke", json={"n": i},
                                  headers={"X-Mayfly-Invocation-Type": "Event"}, timeout=60)
            except requests.ConnectionError:
                continue       # c died with this request: not accepted, sent elsewhere
            if r.status_code == 202:
                with lock:
                    accepted[r.json()["request_id"]] = srv
                    if len(accepted) == total // 3 and not killed.is_set():
                        killed.set()
                        c.proc.kill()   # SIGKILL: no stop, no leave
                return
        raise AssertionError(f"event {i} was accepted nowhere")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(total)))
    assert killed.is_set() and not c.alive()
    assert len(accepted) == total

    # a and b find c gone after its lease, and run what it held.
    def c_lost():
        return [n for n in cluster_nodes(a)["nodes"]
                if n["address"] == f"127.0.0.1:{c.port}" and n["state"] == "lost"]
    wait_for("the killed node found gone", c_lost, timeout=120)

    def statuses():
        ids = list(accepted)
        out = {}
        for i in range(0, len(ids), 100):
            for rid in ids[i:i + 100]:
                r = requests.get(f"{a.url}/v1/invocations/{rid}", timeout=60)
                out[rid] = r.json() if r.status_code == 200 else None
        return out

    deadline = time.monotonic() + 600
    while True:
        recs = statuses()
        missing = [rid for rid, rec in recs.items() if not rec or rec["status"] != "success"]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, f"{len(missing)} of {total} accepted events have no success record, " \
                        f"e.g. {[(rid, recs[rid]) for rid in missing[:3]]}"

    # Events c was running when it died ran again elsewhere, their cut
    # attempt marked interrupted.
    interrupted = [rec for rec in recs.values()
                   if any(h["status"] == "interrupted" for h in rec.get("attempt_history", []))]
    assert interrupted, "no event shows the attempt cut short by the kill"
    from_c = [rec for rec in interrupted if accepted[rec["request_id"]] is c]
    assert from_c, "no event accepted by the killed node shows an interrupted attempt"
    for rec in interrupted:
        h = rec["attempt_history"]
        assert h[-1]["status"] == "success", h
        assert all(x["error_type"] == "Mayfly.Interrupted" for x in h
                   if x["status"] == "interrupted"), h

    doc = cluster_nodes(b)
    assert sum(1 for n in doc["nodes"] if n["state"] == "alive") == 2, doc


def test_one_server_on_sqlite_lists_itself_and_the_runs_before_it(server, tmp_path):
    data = tmp_path / "data"
    srv = server("--sandbox-pool", "0", "--zygotes", "0", data_dir=data)
    first = cluster_nodes(srv)
    assert [n["state"] for n in first["nodes"]] == ["alive"], first
    srv.stop()
    srv = server("--sandbox-pool", "0", "--zygotes", "0", data_dir=data)
    doc = cluster_nodes(srv)
    states = {n["id"]: n["state"] for n in doc["nodes"]}
    assert states == {doc["self"]: "alive", first["self"]: "stopped"}, doc
    assert doc["self"] != first["self"]
