"""One server on PostgreSQL (`mayfly server --store postgresql://…`): the
functions, their code, records, logs, the async queue, topics and schedules
live in the database, and --data only holds what the server unpacks there.

A throwaway PostgreSQL (tests/pg.sh: a cluster in a temporary directory,
listening on a Unix socket there) serves the whole module and is stopped
and removed however the tests end. Each group of tests gets a database of
its own, so that no two servers ever share one at the same time (that is
the cluster's part, not this one's).

Covered: the start log; python and C functions called synchronously and
asynchronously; a topic's fan-out; a schedule firing on the test clock;
records and logs over /v1, and rows read with psql; a server stopped and a
fresh one on an empty --data taking over functions, code, records, dead
letters and a queued event, which runs once when its function is resumed;
a bad or unreachable --store failing the start with one clear line."""

import json
import os
import subprocess

import pytest
import requests

from conftest import (ECHO_PY, MAYFLY_BIN, RECORDER_PY, REPO, build_c_bootstrap, dead_letters,
                      database, deploy, deploy_py, executable, free_port, get_logs, get_record,
                      invoke_ok, psql, unique, wait_for)

T0 = "2026-03-28T12:00:00Z"

FAILING_PY = """
def handler(event, context):
    raise RuntimeError("refused: " + str(event))
"""


def start_on(server, url, *extra, via_env=False):
    """A server on url (by --store, or by MAYFLY_STORE with via_env)."""
    args = ["--sandbox-pool", "0", "--zygotes", "0", "--retry-base-ms", "200", *extra]
    if via_env:
        return server(*args, env={"MAYFLY_STORE": url})
    return server("--store", url, *args)


# ---------------------------------------------------------------- helpers


def enqueue(srv, name, event):
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json=event,
                      headers={"X-Mayfly-Invocation-Type": "Event"}, timeout=60)
    assert r.status_code == 202, f"enqueue {name}: HTTP {r.status_code} {r.text}"
    return r.json()["request_id"]


def record(srv, rid):
    r = requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=60)
    assert r.status_code == 200, f"record {rid}: HTTP {r.status_code} {r.text}"
    return r.json()


def records_of(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 100},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def printed(srv, name):
    """What RECORDER_PY printed, one dict per call."""
    return [json.loads(line["message"]) for line in get_logs(srv, name)
            if line["message"].startswith("{")]


def c_bootstrap(tmp_path):
    source = (REPO / "examples" / "hello-c" / "main.c").read_text()
    return build_c_bootstrap(source, tmp_path / "bootstrap").read_bytes()


# ---------------------------------------------------------------- one server


@pytest.fixture(scope="module")
def srv(pg, module_server_factory):
    return start_on(module_server_factory, database(pg, "mayfly_one"), "--test-clock", T0)


def test_the_start_log_names_the_backend_and_its_schema(srv):
    log = srv.stderr()
    assert "data in PostgreSQL (schema version" in log, log
    assert f"this server's own files in {srv.data_dir}" in log, log
    # The store's and the queue's SQLite files are not made under --data
    # (the KV stores' kv.db still is, until they open a URL too).
    for f in ("mayfly.db", "queue.db"):
        assert not (srv.data_dir / f).exists(), list(srv.data_dir.iterdir())


def test_python_and_c_functions_run_sync_and_async(srv, tmp_path):
    py, c = unique("pg-py"), unique("pg-c")
    deploy_py(srv, py, ECHO_PY)
    deploy(srv, c, {"bootstrap": executable(c_bootstrap(tmp_path))}, runtime="provided",
           handler=None)

    assert invoke_ok(srv, py, {"n": 1}).json() == {"echo": {"n": 1}}
    assert invoke_ok(srv, c, {"name": "pg"}).json()["message"] == "hello, pg!"

    rids = {py: enqueue(srv, py, {"n": 2}), c: enqueue(srv, c, {"name": "queue"})}
    for name, rid in rids.items():
        rec = get_record(srv, rid, timeout=120)
        assert rec["status"] == "success" and rec["function"] == name, rec
        assert rec["attempts"] == 1, rec
        assert [a["status"] for a in rec["attempt_history"]] == ["success"], rec
    assert record(srv, rids[py])["result"] == {"echo": {"n": 2}}
    assert record(srv, rids[c])["result"]["message"] == "hello, queue!"


def test_a_topic_publish_reaches_both_subscribers_once(srv):
    topic, first, second = unique("pg-topic"), unique("pg-sub"), unique("pg-sub")
    for name in (first, second):
        deploy_py(srv, name, RECORDER_PY)
    r = requests.put(f"{srv.url}/v1/topics/{topic}", timeout=60)
    assert r.status_code == 201, r.text
    for name in (first, second):
        r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions", json={"function": name},
                          timeout=60)
        assert r.status_code == 201, r.text
    r = requests.post(f"{srv.url}/v1/topics/{topic}/publish", json={"message": "to both"},
                      timeout=60)
    assert r.status_code == 202, r.text
    deliveries = r.json()["deliveries"]
    assert sorted(d["function"] for d in deliveries) == sorted([first, second])
    for d in deliveries:
        rec = get_record(srv, d["request_id"], timeout=120)
        assert rec["status"] == "success" and rec["trigger"] == f"topic:{topic}", rec
    for name in (first, second):
        runs = wait_for(f"{name}'s delivery", lambda n=name: printed(srv, n), timeout=120)
        assert len(runs) == 1, runs
        assert runs[0]["event"]["Records"][0]["Sns"]["Message"] == "to both"


def test_a_schedule_fires_on_the_test_clock(srv):
    fn, name = unique("pg-tick"), unique("pg-every")
    deploy_py(srv, fn, ECHO_PY)
    r = requests.put(f"{srv.url}/v1/schedules/{name}",
                     json={"expression": "rate(1 minute)", "function": fn}, timeout=60)
    assert r.status_code == 201, r.text
    r = requests.post(f"{srv.url}/v1/test/clock", json={"advance_s": 60}, timeout=60)
    assert r.status_code == 200, r.text
    r = requests.get(f"{srv.url}/v1/schedules/{name}", timeout=60)
    assert r.status_code == 200, r.text
    fires = r.json()["fires"]
    assert len(fires) == 2, fires
    for f in fires:
        rec = get_record(srv, f["request_id"], timeout=120)
        assert rec["status"] == "success" and rec["trigger"] == f"schedule:{name}", rec
        assert rec["result"]["echo"]["detail-type"] == "Scheduled Event", rec


def test_records_and_logs_over_v1_and_in_the_database(srv):
    name = unique("pg-logged")
    deploy_py(srv, name, RECORDER_PY)
    rid = invoke_ok(srv, name, {"say": "stored"}).headers["X-Mayfly-Request-Id"]
    rec = get_record(srv, rid)
    assert rec["status"] == "success" and rec["event"] == {"say": "stored"}, rec
    assert [x["request_id"] for x in records_of(srv, name)] == [rid]
    r = requests.get(f"{srv.url}/v1/invocations", params={"function": name, "status": "success"},
                     timeout=60)
    assert r.status_code == 200 and [x["request_id"] for x in r.json()["invocations"]] == [rid]
    lines = get_logs(srv, name, request_id=rid)
    assert any(json.dumps({"rid": rid, "event": {"say": "stored"}}) == line["message"]
               for line in lines), lines

    url = srv.extra_args[srv.extra_args.index("--store") + 1]
    row = psql(url, f"SELECT function, status FROM invocations WHERE request_id = '{rid}'")
    assert row == f"{name}|success"
    count = psql(url, f"SELECT count(*) FROM logs WHERE request_id = '{rid}'")
    assert int(count) == len(lines)
    sha = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()["code_sha256"]
    assert psql(url, f"SELECT count(*) FROM code_packages WHERE sha256 = '{sha}'") == "1"


def test_kv_stores_live_in_the_database(srv):
    """A key written over /v1 is a row of the database; a conditional write
    with a stale version is refused; a counter counts."""
    store = unique("pg-kv").lower()
    r = requests.put(f"{srv.url}/v1/kv/{store}/user%2F42", data=b'{"cart": [1, 2]}',
                     headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    etag = r.headers["ETag"]
    r = requests.get(f"{srv.url}/v1/kv/{store}/user%2F42", timeout=60)
    assert r.status_code == 200 and r.json() == {"cart": [1, 2]}, r.text
    r = requests.put(f"{srv.url}/v1/kv/{store}/user%2F42", data=b"{}",
                     headers={"If-Match": '"999999"', "Content-Type": "application/json"},
                     timeout=60)
    assert r.status_code == 412, r.text
    r = requests.get(f"{srv.url}/v1/kv/{store}/user%2F42", timeout=60)
    assert r.headers["ETag"] == etag and r.json() == {"cart": [1, 2]}
    for _ in range(3):
        r = requests.post(f"{srv.url}/v1/kv/{store}/visits/incr", json={"by": 2}, timeout=60)
        assert r.status_code == 200, r.text

    url = srv.extra_args[srv.extra_args.index("--store") + 1]
    assert psql(url, f"SELECT count(*) FROM kv WHERE store = '{store}'") == "2"
    assert psql(url, f"SELECT convert_from(value, 'UTF8') FROM kv WHERE store = '{store}'"
                     " AND key = 'user/42'") == '{"cart": [1, 2]}'


# ---------------------------------------------------------------- a fresh server


def test_a_fresh_server_on_an_empty_data_dir_takes_over(pg, server):
    url = database(pg, "mayfly_takeover")
    first = start_on(server, url)
    echo, failing, paused = unique("pg-echo"), unique("pg-failing"), unique("pg-paused")
    sha = deploy_py(first, echo, ECHO_PY)["code_sha256"]
    deploy_py(first, failing, FAILING_PY, **{"async": {"max_retries": 0}})
    deploy_py(first, paused, RECORDER_PY, max_concurrency=0)

    sync_rid = invoke_ok(first, echo, {"before": True}).headers["X-Mayfly-Request-Id"]
    get_record(first, sync_rid)
    dead_rid = enqueue(first, failing, {"doomed": 1})
    wait_for("the dead letter", lambda: dead_letters(first, failing), timeout=120)
    queued_rid = enqueue(first, paused, {"waits": "for the next server"})
    assert record(first, queued_rid)["status"] == "queued"
    first.stop()

    # Another directory, the same database (named through MAYFLY_STORE).
    fresh = start_on(server, url, via_env=True)
    assert fresh.data_dir != first.data_dir
    assert "unpacked 3 code package(s) from the store" in fresh.stderr(), fresh.stderr()
    assert fresh.code_dir(sha).is_dir()
    names = {f["name"] for f in requests.get(f"{fresh.url}/v1/functions", timeout=60)
             .json()["functions"]}
    assert {echo, failing, paused} <= names
    assert record(fresh, sync_rid)["status"] == "success"
    assert record(fresh, sync_rid)["event"] == {"before": True}
    dl = dead_letters(fresh, failing)
    assert [d["request_id"] for d in dl] == [dead_rid], dl
    assert dl[0]["error_message"] == "refused: {'doomed': 1}", dl
    assert invoke_ok(fresh, echo, {"after": True}).json() == {"echo": {"after": True}}

    # Still paused: the event waits in the queue, run by nobody.
    assert record(fresh, queued_rid)["status"] == "queued"
    assert psql(url, f"SELECT count(*) FROM events WHERE request_id = '{queued_rid}'") == "1"
    r = requests.put(f"{fresh.url}/v1/functions/{paused}", json={"max_concurrency": 1},
                     timeout=60)
    assert r.status_code == 200, r.text
    rec = get_record(fresh, queued_rid, timeout=120)
    assert rec["status"] == "success" and rec["attempts"] == 1, rec
    runs = wait_for("the queued event's run", lambda: printed(fresh, paused), timeout=120)
    assert runs == [{"rid": queued_rid, "event": {"waits": "for the next server"}}], runs
    wait_for("the event to leave the queue",
             lambda: psql(url, f"SELECT count(*) FROM events WHERE request_id = '{queued_rid}'")
             == "0", timeout=120)
    assert len(printed(fresh, paused)) == 1


# ---------------------------------------------------------------- bad --store


def start_failing(tmp_path, *args, env=None):
    """Runs a server that must not start; its exit status and stderr."""
    cmd = [MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}", "--data",
           str(tmp_path / "data"), "--sandbox-pool", "0", "--zygotes", "0", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env,
                         stdin=subprocess.DEVNULL)
    return out.returncode, out.stderr


def last_line(stderr):
    return stderr.strip().splitlines()[-1]


def test_an_unreachable_database_fails_the_start_with_one_clear_line(tmp_path):
    rc, err = start_failing(tmp_path, "--store", "postgresql://mayfly:s3cret@127.0.0.1:1/mayfly")
    assert rc == 1, err
    line = last_line(err)
    assert line.startswith("mayfly server: store: cannot connect to PostgreSQL at"), err
    assert "127.0.0.1" in line and "s3cret" not in err, err
    assert "mayfly listening" not in err


def test_a_database_that_does_not_exist_is_named(pg, tmp_path):
    url = pg.replace("///postgres?", "///mayfly_missing?", 1)
    rc, err = start_failing(tmp_path, "--store", url)
    assert rc == 1, err
    assert "mayfly_missing" in last_line(err) and "does not exist" in last_line(err), err


def test_a_url_libpq_cannot_read_is_refused(tmp_path):
    rc, err = start_failing(tmp_path, "--store", "postgresql://%zz@localhost/x")
    assert rc == 1, err
    assert "is not a PostgreSQL URL" in last_line(err), err


def test_a_store_that_is_not_a_postgresql_url_is_a_usage_error(tmp_path):
    rc, err = start_failing(tmp_path, "--store", str(tmp_path / "dir"))
    assert rc == 2, err
    assert "--store (or MAYFLY_STORE) must be a postgresql://" in err, err
    rc, err = start_failing(tmp_path, env={**os.environ, "MAYFLY_STORE": "mysql://x"})
    assert rc == 2, err
    assert "must be a postgresql://" in err, err


def test_help_documents_store(tmp_path):
    out = subprocess.run([MAYFLY_BIN, "server", "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0
    assert "--store URL" in out.stdout and "MAYFLY_STORE" in out.stdout, out.stdout
