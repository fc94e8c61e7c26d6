"""Three nodes on one PostgreSQL: what one node changes, every node serves.

A throwaway PostgreSQL (the `pg` fixture) holds one database that three
servers (A, B and C, on loopback ports) share. A function created, updated
or deleted on one node is served in its new form by the others; a function
URL, a topic with its subscription and a schedule made on one node are
there on the others; a log follower on one node gets the lines of a call
that ran on another; and the connection that hears the changes, killed
from the database's side, comes back and changes keep coming.

Every wait is a deadline for something that never happens, not a timing
check: `make bench` measures how fast a change gets around (the
`propagation` row)."""

import json
import os
import select
import subprocess
import threading
import time

import pytest
import requests

from conftest import (MAYFLY_BIN, RECORDER_PY, cli_env, database, deploy_py, get_logs,
                      get_record, invoke, psql, unique, wait_for)

# Generous: a loaded machine may take its time; correctness is what counts.
WAIT_S = 60


def version_py(tag):
    """A function that answers tag and prints it with its event."""
    return ("import json\n\n"
            "def handler(event, context):\n"
            f"    print(json.dumps({{'tag': {tag!r}, 'event': event}}))\n"
            f"    return {{'tag': {tag!r}}}\n")


@pytest.fixture(scope="module")
def db(pg):
    return database(pg, "mayfly_cluster")


@pytest.fixture(scope="module")
def nodes(db, module_server_factory):
    """Three nodes sharing db, started one after the other (the first
    applies the schema's migrations, the others find them done)."""
    return [module_server_factory("--store", db, "--sandbox-pool", "0", "--zygotes", "0")
            for _ in range(3)]


def answer(srv, name, event=None):
    """The answer of a call of name on srv, or None while srv does not
    have the function (404) or has it without its code yet."""
    r = invoke(srv, name, event or {})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"invoke {name}: HTTP {r.status_code} {r.text}"
    if "X-Mayfly-Function-Error" in r.headers:
        return None
    return r.json()


def serves(srv, name, tag):
    return wait_for(f"{srv.url} to serve {name} as {tag}",
                    lambda: answer(srv, name) == {"tag": tag}, timeout=WAIT_S)


def gone(srv, name):
    return wait_for(f"{name} to be gone from {srv.url}",
                    lambda: requests.get(f"{srv.url}/v1/functions/{name}",
                                         timeout=30).status_code == 404, timeout=WAIT_S)


def test_every_node_names_itself_and_listens(nodes, db):
    ids = set()
    for srv in nodes:
        log = srv.stderr()
        assert "this node is " in log, log
        ids.add(log.split("this node is ", 1)[1].split()[0])
    assert len(ids) == 3, ids
    listeners = psql(db, "SELECT count(*) FROM pg_stat_activity "
                         "WHERE application_name = 'mayfly-listen' AND query LIKE 'LISTEN%'")
    assert int(listeners) >= 3, listeners


def test_deployed_on_a_runs_on_b_and_c(nodes):
    a, b, c = nodes
    name = unique("cl-deploy")
    deploy_py(a, name, version_py("v1"))
    assert answer(a, name) == {"tag": "v1"}
    serves(b, name, "v1")
    serves(c, name, "v1")
    # The package came from the store: each node unpacked it for itself.
    sha = requests.get(f"{b.url}/v1/functions/{name}", timeout=30).json()["code_sha256"]
    assert b.code_dir(sha).is_dir() and c.code_dir(sha).is_dir()


def test_updated_on_c_a_serves_the_new_version(nodes):
    a, b, c = nodes
    name = unique("cl-update")
    deploy_py(a, name, version_py("v1"))
    assert answer(a, name) == {"tag": "v1"}  # a warm instance of v1 on A
    serves(c, name, "v1")
    updated = deploy_py(c, name, version_py("v2"))
    assert updated["version"] == 2
    serves(a, name, "v2")
    serves(b, name, "v2")
    shown = requests.get(f"{a.url}/v1/functions/{name}", timeout=30).json()
    assert shown["version"] == 2 and shown["code_sha256"] == updated["code_sha256"], shown


def test_a_settings_change_elsewhere_reaches_running_instances(nodes):
    """Not only code: settings made on another node (here the environment)
    are what the next call on this node sees."""
    a, b, _ = nodes
    name = unique("cl-env")
    src = ("import os\n\ndef handler(event, context):\n"
           "    return {'tag': os.environ.get('TAG', '')}\n")
    deploy_py(a, name, src, env={"TAG": "one"})
    assert answer(a, name) == {"tag": "one"}
    r = requests.put(f"{b.url}/v1/functions/{name}", json={"env": {"TAG": "two"}}, timeout=60)
    assert r.status_code == 200, r.text
    serves(a, name, "two")


def test_updates_at_once_on_two_nodes_are_both_kept(nodes):
    """A and B update one function at the same moment, round after round,
    each a setting of its own (A the memory, B the timeout): no update is
    lost. Every put gets a version of its own, the last version counts
    every put, and the function ends with A's last memory and B's last
    timeout. (Without the store's conditional write, two puts made from
    the same version both became the next one, and one of them was
    gone.)"""
    a, b, _ = nodes
    name = unique("cl-race")
    deploy_py(a, name, version_py("r"))
    serves(b, name, "r")
    rounds = 25
    versions = []

    def put(srv, body):
        r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)
        assert r.status_code == 200, r.text
        versions.append(r.json()["version"])

    for i in range(rounds):
        gate = threading.Barrier(2)

        def go(srv, body):
            gate.wait()
            put(srv, body)
        ts = [threading.Thread(target=go, args=(a, {"memory_mb": 128 + 2 * i})),
              threading.Thread(target=go, args=(b, {"timeout_s": 10 + i}))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert len(versions) == 2 * rounds
    assert sorted(versions) == list(range(2, 2 * rounds + 2)), sorted(versions)
    for srv in (a, b):
        wait_for(f"{srv.url} to show the last version of {name}",
                 lambda: requests.get(f"{srv.url}/v1/functions/{name}",
                                      timeout=30).json()["version"] == 2 * rounds + 1,
                 timeout=WAIT_S)
        shown = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
        assert shown["memory_mb"] == 128 + 2 * (rounds - 1), shown
        assert shown["timeout_s"] == 10 + rounds - 1, shown


def test_deleted_on_b_is_gone_from_a_and_c(nodes):
    a, b, c = nodes
    name = unique("cl-delete")
    deploy_py(a, name, version_py("v1"))
    assert answer(a, name) == {"tag": "v1"}
    serves(b, name, "v1")
    serves(c, name, "v1")
    r = requests.delete(f"{b.url}/v1/functions/{name}", timeout=60)
    assert r.status_code == 204, r.text
    assert requests.get(f"{b.url}/v1/functions/{name}", timeout=30).status_code == 404
    for srv in (a, c):
        gone(srv, name)
        r = invoke(srv, name, {})
        assert r.status_code == 404, r.text


def test_a_nodes_own_changes_do_not_drain_its_instances(nodes):
    """A node hears its own change as the others do: it has the function
    so already, and the instance it runs stays warm."""
    a, b, _ = nodes
    name = unique("cl-own")
    deploy_py(a, name, version_py("v1"))
    first = invoke(a, name, {})
    assert first.status_code == 200 and first.headers["X-Mayfly-Cold-Start"] == "1", first.text
    # Once B has it, A (which heard the same notification) has had its own.
    serves(b, name, "v1")
    for _ in range(3):
        again = invoke(a, name, {})
        assert again.status_code == 200, again.text
        assert again.headers["X-Mayfly-Cold-Start"] == "0", dict(again.headers)


def test_a_function_url_made_on_a_answers_on_c(nodes):
    a, _, c = nodes
    name = unique("cl-url")
    deploy_py(a, name, version_py("v1"))
    serves(c, name, "v1")
    r = requests.put(f"{a.url}/v1/functions/{name}/url", json={"auth": "none"}, timeout=60)
    assert r.status_code in (200, 201), r.text

    def through_c():
        r = requests.get(f"{c.url}/url/{name}/hello", timeout=60)
        return r.status_code == 200 and r.json() == {"tag": "v1"}
    wait_for(f"{name}'s URL on C", through_c, timeout=WAIT_S)

    r = requests.delete(f"{a.url}/v1/functions/{name}/url", timeout=60)
    assert r.status_code == 204, r.text
    wait_for(f"{name}'s URL gone from C",
             lambda: requests.get(f"{c.url}/url/{name}/hello", timeout=60).status_code == 404,
             timeout=WAIT_S)


def test_a_topic_made_on_a_fans_out_from_b(nodes):
    a, b, _ = nodes
    topic, sub = unique("cl-topic"), unique("cl-sub")
    deploy_py(a, sub, RECORDER_PY)
    r = requests.put(f"{a.url}/v1/topics/{topic}", timeout=60)
    assert r.status_code == 201, r.text
    r = requests.post(f"{a.url}/v1/topics/{topic}/subscriptions", json={"function": sub},
                      timeout=60)
    assert r.status_code == 201, r.text

    def subscribed_on_b():
        r = requests.get(f"{b.url}/v1/topics/{topic}", timeout=30)
        return r.status_code == 200 and [s["function"] for s in r.json()["subscriptions"]] == [sub]
    wait_for(f"{topic} with its subscription on B", subscribed_on_b, timeout=WAIT_S)

    r = requests.post(f"{b.url}/v1/topics/{topic}/publish", json={"message": "from B"},
                      timeout=60)
    assert r.status_code == 202, r.text
    deliveries = r.json()["deliveries"]
    assert [d["function"] for d in deliveries] == [sub], deliveries
    rec = get_record(b, deliveries[0]["request_id"], timeout=120)
    assert rec["status"] == "success" and rec["trigger"] == f"topic:{topic}", rec
    printed = wait_for(f"{sub}'s delivery in its logs",
                       lambda: [json.loads(l["message"]) for l in get_logs(a, sub)
                                if l["message"].startswith("{")], timeout=WAIT_S)
    assert printed[0]["event"]["Records"][0]["Sns"]["Message"] == "from B", printed


def test_a_schedule_made_on_a_shows_on_b(nodes):
    a, b, _ = nodes
    fn, name = unique("cl-tick"), unique("cl-sched")
    deploy_py(a, fn, version_py("v1"))
    # Far off: it never fires during the test.
    r = requests.put(f"{a.url}/v1/schedules/{name}",
                     json={"expression": "at(2099-01-01T00:00:00)", "function": fn}, timeout=60)
    assert r.status_code == 201, r.text

    def on_b():
        r = requests.get(f"{b.url}/v1/schedules/{name}", timeout=30)
        return r.json() if r.status_code == 200 else None
    shown = wait_for(f"schedule {name} on B", on_b, timeout=WAIT_S)
    assert shown["function"] == fn and shown["expression"] == "at(2099-01-01T00:00:00)", shown

    r = requests.delete(f"{b.url}/v1/schedules/{name}", timeout=60)
    assert r.status_code == 204, r.text
    wait_for(f"schedule {name} gone from A",
             lambda: requests.get(f"{a.url}/v1/schedules/{name}", timeout=30).status_code == 404,
             timeout=WAIT_S)


def follow(srv, name):
    """GET …/logs?follow=1 on srv: the response, streaming. A read that
    gets nothing for WAIT_S seconds fails the test."""
    r = requests.get(f"{srv.url}/v1/functions/{name}/logs", params={"follow": "1"},
                     stream=True, timeout=(30, WAIT_S))
    assert r.status_code == 200, r.text
    return r


def read_until(stream, done):
    """The stream's lines, read until done(lines) holds."""
    lines = []
    for raw in stream.iter_lines():
        if raw:
            lines.append(json.loads(raw))
            if done(lines):
                return lines
    raise AssertionError(f"the followed stream ended: {lines}")


def test_logs_follow_on_a_shows_a_call_that_ran_on_b(nodes):
    a, b, c = nodes
    name = unique("cl-follow")
    deploy_py(a, name, version_py("v1"))
    serves(b, name, "v1")
    serves(c, name, "v1")
    stream = follow(a, name)
    try:
        rids = []
        for srv, said in ((b, "on B"), (c, "on C"), (b, "on B again")):
            r = invoke(srv, name, {"say": said})
            assert r.status_code == 200, r.text
            rids.append(r.headers["X-Mayfly-Request-Id"])
        # Every line of the three calls: START, the print, END, REPORT.
        ours = lambda lines: [l for l in lines if l["request_id"] in rids]
        lines = read_until(stream, lambda lines: len(ours(lines)) >= 12)
    finally:
        stream.close()
    want = [json.dumps({"tag": "v1", "event": {"say": s}})
            for s in ("on B", "on C", "on B again")]
    got = [l["message"] for l in ours(lines)]
    # Each line once, and a node's lines in the order it wrote them.
    for w in want:
        assert got.count(w) == 1, got
    for rid in rids:
        mine = [l["message"].split()[0] for l in lines if l["request_id"] == rid]
        assert mine == ["START", "{\"tag\":", "END", "REPORT"], mine
    assert got.index(want[0]) < got.index(want[2]), got


def test_the_cli_follows_on_c_a_call_on_a(nodes):
    a, _, c = nodes
    name = unique("cl-cli")
    deploy_py(a, name, version_py("v1"))
    serves(c, name, "v1")
    proc = subprocess.Popen([MAYFLY_BIN, "logs", name, "--follow", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(c.url))
    try:
        # Whether the call's lines are written before the follow's first
        # read (which gives them) or after it (streamed), they show once.
        r = invoke(a, name, {"say": "cli"})
        assert r.status_code == 200, r.text
        said = json.dumps({"tag": "v1", "event": {"say": "cli"}})
        deadline = time.monotonic() + WAIT_S
        seen, pending = [], b""
        while said not in seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no line of the call on A in C's follow: {seen}"
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            assert chunk, f"mayfly logs --follow ended: {proc.stderr.read()}"
            pending += chunk
            *lines, pending = pending.split(b"\n")
            seen += [json.loads(line)["message"] for line in lines if line]
    finally:
        proc.terminate()
        proc.wait(30)


def test_the_listener_comes_back_after_its_connection_is_killed(nodes, db):
    a, b, c = nodes
    before = [srv.stderr().count("hearing other nodes' changes again") for srv in nodes]
    killed = psql(db, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = 'mayfly-listen'")
    assert int(killed) >= 3, killed
    for srv, n in zip(nodes, before):
        wait_for(f"{srv.url} to say it lost and got back its listener",
                 lambda s=srv, n=n: s.stderr().count("hearing other nodes' changes again") > n
                 and "lost the connection that hears other nodes' changes" in s.stderr(),
                 timeout=WAIT_S)
    name = unique("cl-after")
    deploy_py(a, name, version_py("v1"))
    serves(c, name, "v1")
    deploy_py(b, name, version_py("v2"))
    serves(a, name, "v2")
    serves(c, name, "v2")
    for srv in nodes:
        assert srv.alive(), srv.logs()


def test_the_nodes_stop_cleanly(nodes):
    """Last: a stop closes the listener with the rest (and, in the
    sanitizer build, leaks nothing)."""
    for srv in nodes:
        srv.stop()
