"""Records say why a call ran (`trigger`): invoke, replay, destination,
function:CALLER (and url, schedule:NAME, topic:NAME, tested with their
triggers). Listings filter by it, /metrics counts invocations by its kind,
and an async event keeps it through its retries, its dead letter and a
redrive."""

import json

import boto3
import pytest
import requests
from botocore.config import Config

from conftest import (assert_error, deploy_py, get_record, invoke_ok, metric, metrics, run_cli,
                      unique, wait_for)

EVENT = {"X-Mayfly-Invocation-Type": "Event"}

# Calls its MAYFLY_API as the event says, and answers with what came back.
CALLER = r"""
import json, os, urllib.request
def handler(event, context):
    req = urllib.request.Request(os.environ["MAYFLY_API"] + event["path"],
                                 data=json.dumps(event.get("body", {})).encode(), method="POST",
                                 headers=event.get("headers", {}))
    with urllib.request.urlopen(req, timeout=60) as r:
        return {"status": r.status, "body": r.read().decode(),
                "rid": r.headers.get("X-Mayfly-Request-Id")}
"""

ECHO = "def handler(event, context):\n    return event\n"
FAILING = "def handler(event, context):\n    raise RuntimeError('no')\n"


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("--retry-base-ms", "200")


def done_record(srv, rid):
    return wait_for(f"the record of {rid}",
                    lambda: (lambda r: r if r.get("status") in ("success", "error") else None)(
                        get_record(srv, rid)), timeout=120)


def listed(srv, **params):
    r = requests.get(f"{srv.url}/v1/invocations", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return [x["request_id"] for x in r.json()["invocations"]]


def test_direct_calls_sync_and_async_are_invoke(srv):
    name = unique("trig")
    deploy_py(srv, name, ECHO)
    sync = invoke_ok(srv, name, {"a": 1}).headers["X-Mayfly-Request-Id"]
    assert get_record(srv, sync)["trigger"] == "invoke"
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"b": 2}, headers=EVENT,
                      timeout=30)
    assert r.status_code == 202, r.text
    assert done_record(srv, r.json()["request_id"])["trigger"] == "invoke"
    # The Lambda API's Invoke is a direct call too.
    client = boto3.client("lambda", endpoint_url=srv.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(retries={"max_attempts": 0}))
    out = client.invoke(FunctionName=name, Payload=b'{"c": 3}')
    rid = out["ResponseMetadata"]["RequestId"]
    assert get_record(srv, rid)["trigger"] == "invoke"


def test_replays_are_replay(srv):
    name = unique("trig")
    deploy_py(srv, name, ECHO)
    rid = invoke_ok(srv, name, {"n": 1}).headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    again = requests.post(f"{srv.url}/v1/invocations/{rid}/replay", timeout=60)
    assert again.status_code == 200, again.text
    assert get_record(srv, again.headers["X-Mayfly-Request-Id"])["trigger"] == "replay"
    queued = requests.post(f"{srv.url}/v1/invocations/{rid}/replay", headers=EVENT, timeout=60)
    assert queued.status_code == 202, queued.text
    assert done_record(srv, queued.json()["request_id"])["trigger"] == "replay"
    p = run_cli(srv.url, "invocations", name, "--trigger", "replay", "--json")
    assert p.returncode == 0, p
    assert sorted(x["request_id"] for x in json.loads(p.stdout)["invocations"]) == sorted(
        [again.headers["X-Mayfly-Request-Id"], queued.json()["request_id"]])
    p = run_cli(srv.url, "invocations", name, "--trigger", "nope")
    assert p.returncode != 0 and "trigger" in p.stderr, p


def test_a_function_calling_another_names_its_caller(srv):
    callee, caller = unique("callee"), unique("caller")
    deploy_py(srv, callee, ECHO)
    deploy_py(srv, caller, CALLER, permissions=[f"invoke:{callee}"])
    path = f"/functions/{callee}/invoke"
    out = invoke_ok(srv, caller, {"path": path}).json()
    assert out["status"] == 200, out
    assert get_record(srv, out["rid"])["trigger"] == f"function:{caller}"
    out = invoke_ok(srv, caller, {"path": path, "headers": EVENT}).json()
    assert out["status"] == 202, out
    queued = json.loads(out["body"])["request_id"]
    assert done_record(srv, queued)["trigger"] == f"function:{caller}"
    # Listings filter by the trigger, by its kind or by the whole of it.
    assert queued in listed(srv, function=callee, trigger="function")
    assert queued in listed(srv, function=callee, trigger=f"function:{caller}")
    assert listed(srv, function=callee, trigger="function:someone-else") == []
    assert listed(srv, function=callee, trigger="invoke") == []


def test_a_destination_run_is_destination(srv):
    sink, name = unique("sink"), unique("src")
    deploy_py(srv, sink, ECHO)
    deploy_py(srv, name, ECHO, **{"async": {"on_success": sink}})
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"d": 1}, headers=EVENT,
                      timeout=30)
    assert r.status_code == 202, r.text
    assert done_record(srv, r.json()["request_id"])["trigger"] == "invoke"
    runs = wait_for("the destination's run", lambda: listed(srv, function=sink), timeout=120)
    assert done_record(srv, runs[0])["trigger"] == "destination"
    assert listed(srv, function=sink, trigger="destination") == runs


def test_a_redriven_dead_letter_keeps_its_trigger(srv):
    target, caller = unique("dead"), unique("caller")
    deploy_py(srv, target, FAILING, **{"async": {"max_retries": 0}})
    deploy_py(srv, caller, CALLER, permissions=[f"invoke:{target}"])
    out = invoke_ok(srv, caller, {"path": f"/functions/{target}/invoke",
                                  "headers": EVENT}).json()
    assert out["status"] == 202, out

    def dead():
        r = requests.get(f"{srv.url}/v1/functions/{target}/dead-letters", timeout=30)
        return r.json()["dead_letters"]
    d = wait_for("the dead letter", dead, timeout=120)[0]
    deploy_py(srv, target, ECHO, **{"async": {"max_retries": 0}})
    r = requests.post(f"{srv.url}/v1/functions/{target}/dead-letters/{d['id']}/redrive",
                      timeout=30)
    assert r.status_code == 202, r.text
    rec = done_record(srv, r.json()["request_id"])
    assert rec["status"] == "success" and rec["trigger"] == f"function:{caller}", rec


def test_metrics_count_invocations_by_trigger_kind(srv):
    name = unique("trig")
    deploy_py(srv, name, ECHO)
    rid = invoke_ok(srv, name, {}).headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    requests.post(f"{srv.url}/v1/invocations/{rid}/replay", timeout=60).raise_for_status()
    requests.post(f"{srv.url}/v1/invocations/{rid}/replay", timeout=60).raise_for_status()
    m = metrics(srv)
    assert metric(m, "mayfly_invocations_total", function=name, trigger="invoke") == 1
    assert metric(m, "mayfly_invocations_total", function=name, trigger="replay") == 2
    assert metric(m, "mayfly_invocations_total", function=name) == 3


@pytest.mark.parametrize("bad", ["cron", "schedule:", "schedule:a b", "function:" + "x" * 65,
                                 "invoke:x", "Invoke"])
def test_a_bad_trigger_filter_is_400_naming_it(srv, bad):
    r = requests.get(f"{srv.url}/v1/invocations", params={"trigger": bad}, timeout=30)
    assert_error(r, 400, "bad_request", "trigger")
