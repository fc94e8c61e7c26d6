"""Runtimes that fail to start, die between calls or never ask for work:
each call fails at once with Lambda's error and one record, restarts back
off instead of looping, and a call's deadline counts from its acceptance."""

import math
import re
import threading
import time

import pytest
import requests

from conftest import (
    deploy,
    deploy_py,
    executable,
    get_record,
    invoke,
    invoke_error,
    invoke_ok,
    metric,
    metrics,
    unique,
    wait_for,
)


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def records_of(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 1000},
                     timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


EXITS_AT_ONCE = "#!/bin/sh\necho 'bootstrap: giving up' >&2\nexit 1\n"


def deploy_script(srv, name, script, **settings):
    return deploy(srv, name, {"bootstrap": executable(script)}, runtime="provided",
                  handler=None, **settings)


def test_a_runtime_that_exits_before_asking_for_work_fails_the_call_at_once(srv):
    name = unique("exit1")
    deploy_script(srv, name, EXITS_AT_ONCE, timeout_s=60)
    r, err = invoke_error(srv, name, {})
    rid = r.headers["X-Mayfly-Request-Id"]
    assert err == {"errorType": "Runtime.ExitError",
                   "errorMessage": f"RequestId: {rid} Error: Runtime exited with error: "
                                   "exit status 1"}
    rec = get_record(srv, rid)
    assert rec["status"] == "error" and rec["error_type"] == "Runtime.ExitError", rec
    # The runtime's own words are in the function's log.
    logs = requests.get(f"{srv.url}/v1/functions/{name}/logs", timeout=10).text
    assert "bootstrap: giving up" in logs


def test_restarts_of_a_runtime_that_keeps_dying_back_off(srv):
    name = unique("loop")
    deploy_script(srv, name, EXITS_AT_ONCE, timeout_s=60)
    calls = 20
    t0 = time.monotonic()
    ids = []
    for _ in range(calls):
        r, err = invoke_error(srv, name, {})
        assert err["errorType"] == "Runtime.ExitError", err
        assert err["errorMessage"].startswith(f"RequestId: {r.headers['X-Mayfly-Request-Id']} "
                                              "Error: Runtime exited with error: exit status 1")
        ids.append(r.headers["X-Mayfly-Request-Id"])
    elapsed = time.monotonic() - t0
    # One record per call, each an error: none retried behind the caller's back.
    recs = {rec["request_id"]: rec for rec in records_of(srv, name)}
    assert set(recs) == set(ids), (len(recs), len(ids))
    assert all(rec["status"] == "error" for rec in recs.values())
    # Back-off doubling from 250 ms: at most about log2(elapsed / 0.25) + 1
    # starts in the time the calls took, however long that was; a runtime
    # restarted for every call (or in a loop) would exceed it.
    starts = metric(metrics(srv), "mayfly_instance_start_failures_total", function=name)
    bound = 2 + math.log2(max(elapsed, 0.25) / 0.25)
    assert 1 <= starts <= bound, (starts, elapsed)
    # The function says so, in its JSON and in /metrics.
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()
    failing = fn["start_failures"]
    assert failing["consecutive"] == starts, fn
    assert failing["last_error"] == {"errorType": "Runtime.ExitError",
                                     "errorMessage": "Runtime exited with error: exit status 1"}
    assert re.match(r"^\d{4}-\d\d-\d\dT", failing["retry_after"]), failing
    assert metric(metrics(srv), "mayfly_function_start_backoff_seconds", function=name) >= 0


def test_a_deploy_ends_the_back_off(srv):
    name = unique("fixed")
    deploy_script(srv, name, EXITS_AT_ONCE)
    invoke_error(srv, name, {})
    fn = deploy_py(srv, name, "def handler(event, context):\n    return 'fixed'\n")
    assert fn["start_failures"] is None, fn
    assert invoke_ok(srv, name, {}).json() == "fixed"


def test_an_init_error_fails_each_call_with_the_runtimes_error(srv):
    name = unique("initerr")
    deploy(srv, name, {"app.py": "def handler(event, context):\n    return 1\n"},
           handler="missing.handler")
    for _ in range(3):
        r, err = invoke_error(srv, name, {})
        assert err["errorType"] == "Runtime.ImportModuleError", err
        assert "Unable to import module 'missing'" in err["errorMessage"], err
        assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "error"
    samples = metrics(srv)
    assert 1 <= metric(samples, "mayfly_instance_start_failures_total", function=name) <= 3
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()
    assert fn["start_failures"]["last_error"]["errorType"] == "Runtime.ImportModuleError"


# Instances started before FAIL_AFTER (seconds since the epoch) serve; the
# ones started after it fail their init. A call with "hold" keeps its
# instance busy until that many seconds after FAIL_AFTER.
FAILS_LATER = """import os, sys, time
FAIL_AFTER = float(os.environ["FAIL_AFTER"])
if time.time() > FAIL_AFTER:
    sys.exit("no more instances")
def handler(event, context):
    while time.time() < FAIL_AFTER + event.get("hold", 0):
        time.sleep(0.02)
    return "served"
"""


def test_calls_wait_for_the_instances_that_did_start_when_a_scale_up_fails(srv):
    """A start that fails while an instance of the function is busy (on a
    loaded machine, a start slowed past its init timeout) fails the call
    that asked for it, as on Lambda, but the calls that arrive in the
    back-off after it wait for the instance that is serving rather than
    fail at once."""
    name = unique("scaleup")
    margin = 4.0
    for _ in range(4):
        fail_after = time.time() + margin
        deploy_py(srv, name, FAILS_LATER, timeout_s=120,
                  env={"FAIL_AFTER": repr(fail_after)})
        first = {}
        holder = threading.Thread(target=lambda: first.update(
            r=invoke(srv, name, {"hold": 12}, timeout=180)))
        holder.start()
        wait_for("the first instance to be busy", lambda: not holder.is_alive() or metric(
            metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
        if holder.is_alive():
            break
        holder.join()
        margin *= 2  # it started after FAIL_AFTER on a slow machine: again, with more room
    else:
        pytest.fail("the first instance never started before FAIL_AFTER")
    time.sleep(max(0.0, fail_after - time.time()) + 0.1)
    # Calls until one lands in a back-off: each that finds none asks for a
    # start, which fails (and lengthens the back-off); the first that
    # arrives inside one waits for the busy instance and is served by it.
    outcomes = []
    for _ in range(8):
        r = invoke(srv, name, {}, timeout=180)
        outcomes.append((r.headers.get("X-Mayfly-Function-Error"), r.text))
        if "X-Mayfly-Function-Error" not in r.headers:
            break
    holder.join()
    assert first["r"].status_code == 200 and first["r"].json() == "served", first["r"].text
    assert outcomes[-1] == (None, '"served"'), outcomes
    assert len(outcomes) >= 2, outcomes  # a start was tried, and failed, first
    assert all(err == "Unhandled" and "Runtime.ExitError" in text
               for err, text in outcomes[:-1]), outcomes
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()
    assert fn["start_failures"]["consecutive"] == len(outcomes) - 1, (fn, outcomes)


def test_a_runtime_that_dies_during_a_call_fails_that_call(srv):
    name = unique("dies")
    deploy_py(srv, name, "import os\ndef handler(event, context):\n    os._exit(7)\n")
    r, err = invoke_error(srv, name, {})
    assert err["errorType"] == "Runtime.ExitError"
    assert err["errorMessage"] == (f"RequestId: {r.headers['X-Mayfly-Request-Id']} Error: "
                                   "Runtime exited with error: exit status 7")
    # It had initialised, so this is no failed start.
    assert metric(metrics(srv), "mayfly_instance_start_failures_total", function=name) == 0


# A bootstrap that answers each call and then exits instead of asking for
# the next one, after a pause: a call that arrives meanwhile was assigned to
# it and goes back to the queue, once, for a new instance.
ANSWERS_THEN_EXITS = """#!/usr/bin/python3
import os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
with urllib.request.urlopen(api + "next") as r:
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
req = urllib.request.Request(api + rid + "/response", data=b'"served"', method="POST")
urllib.request.urlopen(req).read()
time.sleep(0.5)
"""


def test_a_call_assigned_to_a_runtime_that_exits_between_calls_goes_to_another(srv):
    name = unique("between")
    deploy_script(srv, name, ANSWERS_THEN_EXITS, timeout_s=30)
    first = invoke_ok(srv, name, {})
    second = invoke_ok(srv, name, {})
    assert first.json() == second.json() == "served"
    assert second.headers["X-Mayfly-Cold-Start"] == "1"
    for r in (first, second):
        assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "success"
    # Exits after serving calls are not failed starts.
    assert metric(metrics(srv), "mayfly_instance_start_failures_total", function=name) == 0


# A bootstrap that asks for the next call with HEAD first: refused, it
# loses no call, and its GET then gets the call.
HEAD_THEN_GET = """#!/usr/bin/python3
import json, os, urllib.error, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
try:
    urllib.request.urlopen(urllib.request.Request(api + "next", method="HEAD"))
    head = 200
except urllib.error.HTTPError as e:
    head = e.code
with urllib.request.urlopen(api + "next") as r:
    rid = r.headers["Lambda-Runtime-Aws-Request-Id"]
    event = json.loads(r.read())
body = json.dumps({"head": head, "event": event}).encode()
urllib.request.urlopen(urllib.request.Request(api + rid + "/response", data=body, method="POST"))
"""


def test_a_head_for_the_next_call_is_refused_and_loses_no_call(srv):
    name = unique("head-next")
    deploy_script(srv, name, HEAD_THEN_GET, timeout_s=30)
    r = invoke_ok(srv, name, {"n": 1})
    assert r.json() == {"head": 405, "event": {"n": 1}}, r.text


NEVER_ASKS = "#!/bin/sh\nexec sleep 600\n"


def test_a_call_waiting_for_a_runtime_that_never_asks_times_out_from_its_acceptance(server):
    srv = server()
    name = unique("stuck")
    deploy_script(srv, name, NEVER_ASKS, timeout_s=1)
    r, err = invoke_error(srv, name, {}, timeout=120)
    assert err == {"errorType": "Sandbox.Timedout",
                   "errorMessage": "Task timed out after 1.00 seconds"}
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "timeout", rec
    # The runtime gets Lambda's 10 s to initialise, then counts as a failed
    # start; the server stops without waiting for it.
    wait_for("the stuck start to be given up",
             lambda: metric(metrics(srv), "mayfly_instance_start_failures_total",
                            function=name) == 1, timeout=60)
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()
    assert fn["start_failures"]["last_error"]["errorType"] == "Sandbox.Timedout"
    srv.stop()


# The remaining time, read between two readings of the clock: the runtime
# computed it as deadline - now for a `now` between them.
REMAINING_PY = """
import time
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    before = time.time()
    remaining = context.get_remaining_time_in_millis()
    after = time.time()
    return {"remaining_ms": remaining, "before_ms": before * 1000, "after_ms": after * 1000}
"""


def test_a_queued_calls_deadline_counts_from_its_acceptance(srv):
    name = unique("queued")
    deploy_py(srv, name, REMAINING_PY, timeout_s=30, max_concurrency=1)
    invoke_ok(srv, name, {})  # warm, so the waits below are the queue's
    for _ in range(5):
        out = {}
        first = threading.Thread(
            target=lambda: out.update(a=invoke(srv, name, {"sleep": 2.0}, timeout=60)))
        first.start()
        wait_for("the first call to run", lambda: metric(
            metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
        b = invoke(srv, name, {}, timeout=60)
        first.join(60)
        a = out["a"]
        assert a.status_code == b.status_code == 200, (a.text, b.text)
        rec_a = get_record(srv, a.headers["X-Mayfly-Request-Id"])
        rec_b = get_record(srv, b.headers["X-Mayfly-Request-Id"])
        start_a, start_b = (re_iso(r["start"]) for r in (rec_a, rec_b))
        if start_b < start_a + rec_a["duration_ms"]:
            break  # b was accepted while a ran: it waited in the queue
    else:
        pytest.fail("the second call never arrived while the first ran")
    doc = b.json()
    # The runtime's deadline is acceptance + timeout on the server's clock:
    # remaining + the moment it was read gives that instant back, the moment
    # being bracketed by the handler's two readings (whole milliseconds).
    earliest = doc["remaining_ms"] + math.floor(doc["before_ms"])
    latest = doc["remaining_ms"] + math.floor(doc["after_ms"])
    assert earliest <= start_b + 30000 <= latest, (earliest, start_b + 30000, latest)


def re_iso(ts):
    from datetime import datetime
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def test_a_bootstrap_that_cannot_be_executed_is_an_invalid_entrypoint(srv):
    from conftest import Entry
    name = unique("noexec")
    deploy(srv, name, {"bootstrap": Entry(b"#!/bin/sh\necho never\n", mode=0o644)},
           runtime="provided", handler=None)
    r, err = invoke_error(srv, name, {})
    rid = r.headers["X-Mayfly-Request-Id"]
    assert err == {"errorType": "Runtime.InvalidEntrypoint",
                   "errorMessage": f"RequestId: {rid} Error: fork/exec /var/task/bootstrap: "
                                   "permission denied"}
    assert get_record(srv, rid)["error_type"] == "Runtime.InvalidEntrypoint"


# A bootstrap that probes the Runtime API with answers' heads alone, before
# it answers for real: the server must judge each from its head.
PROBES = r'''#!/usr/bin/python3
import http.client, json, os, select, socket
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
PATH = "/2018-06-01/runtime/invocation/"

def head_only(rid, length, body=b""):
    s = socket.create_connection((host, int(port)), timeout=60)
    s.sendall(b"POST %s%s/response HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
              % (PATH.encode(), rid.encode(), length, body))
    return s

def status(s):
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    return int(data.split(b" ", 2)[1])

api = http.client.HTTPConnection(host, int(port), timeout=600)
while True:
    api.request("GET", PATH + "next")
    r = api.getresponse()
    rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(r.read())
    if event.get("big"):
        out = {"big": status(head_only(rid, 7 << 20))}
        api.request("POST", PATH + rid + "/response", body=json.dumps(out))
        api.getresponse().read()
        continue
    out = {"wrong_id": status(head_only("not-" + rid, 1 << 20))}
    # Two answers' heads, neither body complete: the server reads one (in
    # whichever order it took the connections) and refuses the other.
    first = head_only(rid, 1000, b"x" * 10)
    second = head_only(rid, 1000)
    ready, _, _ = select.select([first, second], [], [], 60)
    answers = [status(s) for s in ready]
    out["second"] = answers[0] if len(answers) == 1 else answers
    first.close()                               # dropped: the slot is free again
    second.close()
    api.request("POST", PATH + rid + "/response", body=json.dumps(out))
    api.getresponse().read()
'''


def test_the_runtime_api_judges_an_answer_from_its_head(srv):
    name = unique("heads")
    deploy_script(srv, name, PROBES, timeout_s=120)
    out = invoke_ok(srv, name, {}, timeout=180).json()
    # A wrong request id is refused before the body is read; a second answer
    # while one body is being read is refused too; a dropped one frees it.
    assert out == {"wrong_id": 400, "second": 409}, out


def test_a_response_declared_too_large_fails_the_call_at_once(srv):
    name = unique("bighead")
    deploy_script(srv, name, PROBES, timeout_s=120)
    r, err = invoke_error(srv, name, {"big": True}, timeout=180)
    assert err["errorType"] == "Function.ResponseSizeTooLarge", err
    assert "7340032 bytes" in err["errorMessage"], err
