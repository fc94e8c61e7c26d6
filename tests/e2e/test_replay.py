"""Replay: a recorded call's event runs again on the function's current
version (POST /v1/invocations/ID/replay, `mayfly replay ID`), answered as an
invoke, its record marked replay_of; the CLI shows a diff when the result
changed. An event cut, redacted or not kept cannot run again: 409 saying
which."""

import json

import pytest
import requests

from conftest import (assert_error, deploy_py, get_record, invoke, invoke_ok, run_cli, unique)

V1 = r"""
def handler(event, context):
    return {"version": 1, "sum": sum(event.get("n", [])), "items": event.get("n", [])}
"""

V2 = r"""
def handler(event, context):
    return {"version": 2, "sum": sum(event.get("n", [])), "items": event.get("n", [])}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def replay(srv, rid, **headers):
    return requests.post(f"{srv.url}/v1/invocations/{rid}/replay", headers=headers, timeout=60)


def test_replaying_a_success_gives_the_same_result(srv):
    name = unique("replay")
    deploy_py(srv, name, V1)
    r = invoke_ok(srv, name, {"n": [1, 2, 3]})
    rid = r.headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    again = replay(srv, rid)
    assert again.status_code == 200 and again.json() == r.json()
    new = get_record(srv, again.headers["X-Mayfly-Request-Id"])
    assert new["replay_of"] == rid and new["event"] == {"n": [1, 2, 3]}
    assert "replay_of" not in get_record(srv, rid)
    p = run_cli(srv.url, "replay", rid)
    assert p.returncode == 0, p
    assert json.loads(p.stdout) == r.json()     # the result, and no diff after it


def test_replaying_after_an_update_shows_the_diff(srv):
    name = unique("replay")
    deploy_py(srv, name, V1)
    r = invoke_ok(srv, name, {"n": [4, 5]})
    rid = r.headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    deploy_py(srv, name, V2)
    p = run_cli(srv.url, "replay", rid)
    assert p.returncode == 0, p
    assert "--- recorded\n+++ replayed\n" in p.stdout
    assert '-  "version": 1' in p.stdout and '+  "version": 2' in p.stdout
    assert '   "sum": 9' in p.stdout                 # context, unchanged


def test_an_async_replay_is_queued_and_recorded(srv):
    name = unique("replay")
    deploy_py(srv, name, V1)
    rid = invoke_ok(srv, name, {"n": [7]}).headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    q = replay(srv, rid, **{"X-Mayfly-Invocation-Type": "Event"})
    assert q.status_code == 202
    new = get_record(srv, q.json()["request_id"])
    assert new["status"] == "success" and new["replay_of"] == rid
    assert new["result"]["sum"] == 7
    p = run_cli(srv.url, "replay", rid, "--async")
    assert p.returncode == 0 and "request_id" in p.stdout, p


@pytest.mark.parametrize("record,event,mention", [
    ({}, {"password": "x", "n": [1]}, "was redacted"),
    ({"max_payload_kb": 1}, {"n": [1] * 2000}, "was cut"),
    ({"payloads": "off"}, {"n": [1]}, "was not kept"),
    ({"payloads": "errors"}, {"n": [1]}, "was not kept"),
])
def test_an_event_not_kept_whole_cannot_run_again(srv, record, event, mention):
    name = unique("replay")
    deploy_py(srv, name, V1, record=record) if record else deploy_py(srv, name, V1)
    rid = invoke_ok(srv, name, event).headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    assert_error(replay(srv, rid), 409, "conflict", "cannot be replayed", mention)
    p = run_cli(srv.url, "replay", rid)
    assert p.returncode == 1 and mention in p.stderr, p


def test_replaying_what_does_not_exist(srv):
    assert_error(replay(srv, "01234567-89ab-7def-8123-456789abcdef"), 404, "not_found")
    name = unique("replay")
    deploy_py(srv, name, V1)
    rid = invoke_ok(srv, name, {"n": [1]}).headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    assert_error(replay(srv, rid, **{"X-Mayfly-Invocation-Type": "Sometimes"}), 400,
                 "bad_request", "X-Mayfly-Invocation-Type")
    requests.delete(f"{srv.url}/v1/functions/{name}", timeout=30)
    r = replay(srv, rid)
    assert r.status_code == 404, r.text
