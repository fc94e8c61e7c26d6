"""Where a call's time went, in its record (docs/observability.md): queue_ms
(acceptance until the runtime was handed the event, a cold start's
included), sandbox_ms (of init_ms, making the sandbox; cold starts only)
and init_ms; on both stores' records, in the API and the CLI."""

import json

import pytest
import requests

from conftest import database, deploy_py, get_record, invoke, invoke_ok, unique

NOOP = "def handler(event, context):\n    return {'ok': True}\n"
FAILS_INIT = "raise RuntimeError('no start for you')\n\ndef handler(event, context):\n    return 1\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_server(request, server):
    """A server on SQLite (its --data) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return server()
    url = database(request.getfixturevalue("pg"), unique("phases").replace("-", "_"))
    return server("--store", url)


def test_a_cold_call_records_its_wait_sandbox_and_init_and_a_warm_one_no_sandbox(store_server):
    srv = store_server
    name = unique("phases")
    deploy_py(srv, name, NOOP)

    r = invoke_ok(srv, name)
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    cold = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert cold["cold_start"] is True, cold
    # The instance was started for this call, after it was accepted: the
    # call waited at least as long as the instance took to start (both
    # from the same monotonic clock), and making the sandbox was part of
    # that start.
    assert cold["sandbox_ms"] > 0, cold
    assert cold["init_ms"] > cold["sandbox_ms"], cold
    assert cold["queue_ms"] >= cold["init_ms"], cold
    # The answer's headers and the record hold the same measurement (the
    # headers print it to 3 places).
    assert r.headers["X-Mayfly-Sandbox-Ms"] == f"{cold['sandbox_ms']:.3f}", (r.headers, cold)
    assert r.headers["X-Mayfly-Init-Ms"] == f"{cold['init_ms']:.3f}", (r.headers, cold)

    r = invoke_ok(srv, name)
    assert r.headers["X-Mayfly-Cold-Start"] == "0"
    warm = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert warm["cold_start"] is False, warm
    # A warm call made no sandbox; it still waited, however little, to be
    # handed to the instance.
    assert warm["sandbox_ms"] is None, warm
    assert warm["queue_ms"] is not None and warm["queue_ms"] >= 0, warm

    # Listings carry them too, and the CLI prints them with the record.
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", timeout=30)
    assert r.status_code == 200, r.text
    listed = {x["request_id"]: x for x in r.json()["invocations"]}
    for rec in (cold, warm):
        got = listed[rec["request_id"]]
        assert (got["queue_ms"], got["sandbox_ms"]) == (rec["queue_ms"], rec["sandbox_ms"])
    p = srv.cli("invocation", cold["request_id"])
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)
    assert (shown["queue_ms"], shown["sandbox_ms"], shown["init_ms"]) == \
        (cold["queue_ms"], cold["sandbox_ms"], cold["init_ms"])


def test_a_failed_init_keeps_its_sandbox_time_and_no_wait(server):
    srv = server()
    name = unique("phases-init")
    deploy_py(srv, name, FAILS_INIT)
    r = invoke(srv, name, {})
    assert r.status_code == 200 and r.headers.get("X-Mayfly-Function-Error"), r.text
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "error" and rec["cold_start"] is True, rec
    # Never handed over: no wait to speak of; its instance did start.
    assert rec["queue_ms"] is None, rec
    assert rec["sandbox_ms"] > 0 and rec["init_ms"] > rec["sandbox_ms"], rec


def test_a_paused_functions_refused_call_has_no_breakdown(server):
    srv = server()
    name = unique("phases-paused")
    deploy_py(srv, name, NOOP, max_concurrency=0)
    r = invoke(srv, name, {})
    assert r.status_code == 429, r.text
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "throttled", rec
    assert rec["queue_ms"] is None and rec["sandbox_ms"] is None, rec
