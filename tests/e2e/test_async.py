"""Asynchronous invocation: an event is accepted (202) once it is on disk,
runs with its request id as the function's aws_request_id, is retried on a
function error and ends as a dead letter when its retries run out; dead
letters can be redriven; idempotency keys, destinations (on_success,
on_failure, chains), the queue's figures and metrics, deleting a function,
a graceful stop with events running or arriving, and a backlog that never
stands in front of synchronous calls.

Most tests share one server whose retry base is 200 ms (--retry-base-ms), so
a retry schedule of ~1 and ~2 bases takes well under a second."""

import base64
import json
import math
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests

from conftest import (ECHO_PY, assert_error, dead_letters, deploy_py, fn_body, get_logs,
                      get_record, healthy, invoke, invoke_ok, metric, metrics, unique, wait_for)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
EVENT_HEADERS = {"X-Mayfly-Invocation-Type": "Event"}
RETRY_BASE_MS = 200
DONE = ("success", "error", "timeout", "oom")

# Prints what it got (so a test reads each run from the logs) and answers.
PRINTER_PY = """
import json

def handler(event, context):
    print(json.dumps({"rid": context.aws_request_id, "event": event}))
    return {"ok": True, "event": event}
"""

FAILING_PY = """
import json

def handler(event, context):
    print(json.dumps({"rid": context.aws_request_id, "event": event}))
    raise ValueError("refused order " + str(event.get("order")))
"""

SLEEPER_PY = """
import json, time

def handler(event, context):
    print(json.dumps({"rid": context.aws_request_id, "phase": "start"}), flush=True)
    time.sleep(event.get("sleep", 0.25))
    print(json.dumps({"rid": context.aws_request_id, "phase": "end"}), flush=True)
    return {"slept": event.get("sleep", 0.25), "i": event.get("i")}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("--retry-base-ms", RETRY_BASE_MS)


# ---------------------------------------------------------------- helpers


def enqueue(srv, name, event=None, raw=None, key=None, headers=None, session=None, timeout=30):
    """POSTs an event for asynchronous invocation; returns the response."""
    hdrs = dict(EVENT_HEADERS)
    if key is not None:
        hdrs["X-Mayfly-Idempotency-Key"] = key
    hdrs.update(headers or {})
    data = raw if raw is not None else json.dumps({} if event is None else event).encode()
    post = (session or requests).post
    return post(f"{srv.url}/v1/functions/{name}/invoke", data=data, headers=hdrs,
                timeout=timeout)


def accepted(r):
    """Asserts a 202 for an event and returns its request id."""
    assert r.status_code == 202, f"expected 202 for an event, got {r.status_code}: {r.text}"
    rid = r.json()["request_id"]
    assert UUID.match(rid), rid
    assert r.headers.get("X-Mayfly-Request-Id") == rid, dict(r.headers)
    return rid


def enqueue_ok(srv, name, event=None, **kw):
    return accepted(enqueue(srv, name, event, **kw))


def fetch_record(srv, rid, session=None):
    r = (session or requests).get(f"{srv.url}/v1/invocations/{rid}", timeout=10)
    if r.status_code == 404:
        return None
    assert r.status_code == 200, f"record {rid}: HTTP {r.status_code} {r.text}"
    return r.json()


def wait_record(srv, rid, statuses=DONE, timeout=60.0):
    """The record of rid once its status is one of statuses."""
    def done():
        rec = fetch_record(srv, rid)
        return rec if rec and rec["status"] in statuses else None
    return wait_for(f"the record of {rid} to reach {'|'.join(statuses)}", done, timeout)


def wait_dead_letters(srv, name, count, timeout=60.0):
    return wait_for(f"{count} dead letter(s) of {name}",
                    lambda: (lambda d: d if len(d) >= count else None)(dead_letters(srv, name)),
                    timeout)


def fn_info(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10)
    assert r.status_code == 200, f"function {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def async_queue(srv, name):
    return fn_info(srv, name)["async_queue"]


def listed(srv, name=None, status=None, limit=None, everywhere=False):
    """Records from GET /v1/functions/{name}/invocations, or with
    everywhere=True from GET /v1/invocations?function=name."""
    params = {}
    if status:
        params["status"] = status
    if limit:
        params["limit"] = limit
    if everywhere:
        if name:
            params["function"] = name
        url = f"{srv.url}/v1/invocations"
    else:
        url = f"{srv.url}/v1/functions/{name}/invocations"
    r = requests.get(url, params=params, timeout=10)
    assert r.status_code == 200, f"{url} {params}: HTTP {r.status_code} {r.text}"
    return r.json()["invocations"]


def printed(srv, name):
    """The JSON documents a function printed, in order."""
    out = []
    for line in get_logs(srv, name):
        try:
            out.append(json.loads(line["message"]))
        except ValueError:
            pass
    return out


def runs_of(srv, name, rid):
    return [p for p in printed(srv, name) if p.get("rid") == rid and p.get("phase") != "end"]


def wait_printed(srv, name, count, timeout=60.0):
    return wait_for(f"{count} printed line(s) of {name}",
                    lambda: (lambda p: p if len(p) >= count else None)(printed(srv, name)),
                    timeout)


def has_metric(samples, name, **labels):
    want = set(labels.items())
    return any(n == name and want <= ls for (n, ls) in samples)


def iso(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- accept and run


def test_an_event_is_accepted_then_runs_once(srv):
    name = unique("async-ok")
    deploy_py(srv, name, PRINTER_PY)
    event = {"order": 1, "items": ["a", "b"], "uni": "é✓"}
    r = enqueue(srv, name, event)
    rid = accepted(r)
    assert r.headers["Content-Type"].startswith("application/json")
    assert "X-Mayfly-Idempotent-Replay" not in r.headers

    rec = wait_record(srv, rid)
    assert rec["status"] == "success", rec
    assert rec["request_id"] == rid and rec["function"] == name, rec
    assert rec["attempts"] == 1, rec
    assert rec["error_type"] is None and rec["error_message"] is None, rec
    hist = rec["attempt_history"]
    assert len(hist) == 1, hist
    assert hist[0]["attempt"] == 1 and hist[0]["status"] == "success", hist
    assert hist[0]["error_type"] is None and hist[0]["error_message"] is None, hist
    assert hist[0]["duration_ms"] >= 0 and iso(hist[0]["start"]) > 0, hist

    # It ran once, with the event as sent and its request id as the
    # function's aws_request_id.
    runs = wait_printed(srv, name, 1)
    assert runs == [{"rid": rid, "event": event}], runs
    time.sleep(0.3)
    assert len(printed(srv, name)) == 1, "the event ran more than once"

    q = async_queue(srv, name)
    assert q["depth"] == 0 and q["running"] == 0 and q["dead_letters"] == 0, q
    assert q["enqueued"] == 1 and q["attempts"] == 1 and q["retries"] == 0, q


def test_a_finished_record_already_holds_its_attempt_history(srv):
    """A client that polls until the status is final reads the attempt
    history with it, every time."""
    name = unique("async-poll")
    deploy_py(srv, name, PRINTER_PY)
    s = requests.Session()
    incomplete = []
    for i in range(20):
        rid = enqueue_ok(srv, name, {"i": i}, session=s)
        deadline = time.monotonic() + 60
        while True:
            rec = fetch_record(srv, rid, session=s)
            if rec and rec["status"] in DONE:
                break
            assert time.monotonic() < deadline, f"{rid} did not finish: {rec}"
        hist = rec.get("attempt_history")
        if not hist or hist[-1]["status"] != rec["status"] or len(hist) != rec["attempts"]:
            incomplete.append(rec)
    assert not incomplete, (f"{len(incomplete)} of 20 records had a final status without "
                            f"the attempt that reached it, e.g. {incomplete[0]}")


def test_unknown_invocation_type_is_400_and_request_response_is_sync(srv):
    name = unique("async-type")
    deploy_py(srv, name, ECHO_PY)
    for bogus in ("Bogus", "event2", "Event,Event"):
        r = invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": bogus})
        assert_error(r, 400, "bad_request", "X-Mayfly-Invocation-Type")
    # Case does not matter, and RequestResponse is the synchronous call.
    r = invoke(srv, name, {"x": 1}, headers={"X-Mayfly-Invocation-Type": "event"})
    accepted(r)
    r = invoke(srv, name, {"x": 2}, headers={"X-Mayfly-Invocation-Type": "RequestResponse"})
    assert r.status_code == 200 and r.json() == {"echo": {"x": 2}}, r.text


def test_unknown_function_is_404_and_bad_name_400(srv):
    r = enqueue(srv, unique("nobody"), {})
    assert_error(r, 404, "not_found")
    r = enqueue(srv, "bad.name", {})
    assert_error(r, 400, "bad_request", "name")


def test_event_over_256_kib_is_413_and_nothing_is_queued(srv):
    name = unique("async-big")
    deploy_py(srv, name, "def handler(event, context):\n    return len(event)\n")
    # A JSON string of exactly 256 KiB is accepted; one byte more is not.
    exact = json.dumps("x" * (256 * 1024 - 2)).encode()
    assert len(exact) == 256 * 1024
    rid = accepted(enqueue(srv, name, raw=exact))
    r = enqueue(srv, name, raw=exact[:-1] + b"x\"")
    assert_error(r, 413, "payload_too_large")
    r = enqueue(srv, name, raw=b"\"" + b"y" * (1 << 20) + b"\"")
    assert_error(r, 413, "payload_too_large")
    assert wait_record(srv, rid)["status"] == "success"
    q = async_queue(srv, name)
    assert q["enqueued"] == 1 and q["attempts"] == 1 and q["depth"] == 0, q


def test_max_async_event_kb_flag_sets_the_bound(server):
    srv = server("--max-async-event-kb", "1")
    name = unique("async-small")
    deploy_py(srv, name, ECHO_PY)
    accepted(enqueue(srv, name, raw=json.dumps("a" * 1022).encode()))
    r = enqueue(srv, name, raw=json.dumps("a" * 1023).encode())
    assert_error(r, 413, "payload_too_large")
    # The synchronous bound is not the asynchronous one.
    invoke_ok(srv, name, "b" * 10000)


# ---------------------------------------------------------------- retries and dead letters


def test_a_failing_event_is_retried_twice_then_dead_lettered(srv):
    name = unique("async-fail")
    deploy_py(srv, name, FAILING_PY)
    raw = b'{"order": 7,   "note": "kept byte for byte \\u00e9"}'
    rid = accepted(enqueue(srv, name, raw=raw))

    dl = wait_dead_letters(srv, name, 1)
    assert len(dl) == 1, dl
    d = dl[0]
    assert isinstance(d["id"], int) and d["id"] > 0, d
    assert d["request_id"] == rid and d["attempts"] == 3, d
    assert d["condition"] == "RetriesExhausted", d
    assert d["error_type"] == "ValueError" and d["error_message"] == "refused order 7", d
    assert base64.b64decode(d["event_base64"]) == raw, d
    assert abs(iso(d["time"]) - time.time()) < 60, d

    rec = wait_record(srv, rid)
    assert rec["status"] == "error" and rec["attempts"] == 3, rec
    assert rec["error_type"] == "ValueError" and rec["error_message"] == "refused order 7", rec
    hist = rec["attempt_history"]
    assert [h["attempt"] for h in hist] == [1, 2, 3], hist
    assert all(h["status"] == "error" and h["error_type"] == "ValueError"
               and h["error_message"] == "refused order 7" for h in hist), hist
    # Retries come after about 1 and then about 2 retry bases (±10%), counted
    # from the end of the attempt before. The server holds each back that
    # long, so these lower bounds hold however busy the machine is; that they
    # come at all, and soon, is the dead letter above (the default base
    # would take minutes).
    starts = [iso(h["start"]) for h in hist]
    ends = [start + h["duration_ms"] / 1000 for start, h in zip(starts, hist)]
    base = RETRY_BASE_MS / 1000
    wait1, wait2 = starts[1] - ends[0], starts[2] - ends[1]
    assert wait1 >= 0.9 * base - 0.002, f"first retry {wait1:.3f} s after the attempt"
    assert wait2 >= 1.8 * base - 0.002, f"second retry {wait2:.3f} s after the attempt"

    # Three runs, all with the same request id; nothing after the dead letter.
    wait_printed(srv, name, 3)
    time.sleep(3 * base)
    runs = printed(srv, name)
    assert [p["rid"] for p in runs] == [rid] * 3, runs
    assert len(dead_letters(srv, name)) == 1

    q = async_queue(srv, name)
    assert q["dead_letters"] == 1 and q["depth"] == 0 and q["running"] == 0, q
    assert q["enqueued"] == 1 and q["attempts"] == 3 and q["retries"] == 2, q
    m = metrics(srv)
    assert metric(m, "mayfly_dead_letters", function=name) == 1
    assert metric(m, "mayfly_async_attempts_total", function=name) == 3
    assert metric(m, "mayfly_async_retries_total", function=name) == 2
    assert metric(m, "mayfly_async_enqueued_total", function=name) == 1

    # The error records are listed by status.
    assert [x["request_id"] for x in listed(srv, name, status="error")] == [rid]
    assert listed(srv, name, status="success") == []


def test_max_retries_0_makes_one_attempt(srv):
    name = unique("async-once")
    deploy_py(srv, name, FAILING_PY, **{"async": {"max_retries": 0}})
    assert fn_info(srv, name)["async"]["max_retries"] == 0
    rid = enqueue_ok(srv, name, {"order": 1})
    d = wait_dead_letters(srv, name, 1)[0]
    assert d["request_id"] == rid and d["attempts"] == 1, d
    assert d["condition"] == "RetriesExhausted", d
    rec = wait_record(srv, rid)
    assert rec["attempts"] == 1 and len(rec["attempt_history"]) == 1, rec
    wait_printed(srv, name, 1)
    time.sleep(3 * RETRY_BASE_MS / 1000)
    assert len(printed(srv, name)) == 1, "an event with max_retries 0 ran again"


def test_max_retries_1_makes_two_attempts(srv):
    name = unique("async-twice")
    deploy_py(srv, name, FAILING_PY, **{"async": {"max_retries": 1}})
    rid = enqueue_ok(srv, name, {"order": 2})
    d = wait_dead_letters(srv, name, 1)[0]
    assert d["request_id"] == rid and d["attempts"] == 2, d
    assert [h["status"] for h in wait_record(srv, rid)["attempt_history"]] == ["error"] * 2


@pytest.mark.parametrize("settings", [{"max_retries": 3}, {"max_retries": -1},
                                      {"max_event_age_s": 59}, {"max_event_age_s": 21601},
                                      {"max_retries": "2"}])
def test_bad_async_settings_are_400(srv, settings):
    r = requests.put(f"{srv.url}/v1/functions/{unique('async-bad')}",
                     json=fn_body(**{"async": settings}), timeout=30)
    assert_error(r, 400, "bad_request", "async")


def test_a_timeout_is_a_function_error_and_is_retried(srv):
    name = unique("async-slow")
    deploy_py(srv, name, SLEEPER_PY, timeout_s=1, **{"async": {"max_retries": 1}})
    rid = enqueue_ok(srv, name, {"sleep": 5})
    d = wait_dead_letters(srv, name, 1, timeout=20)[0]
    assert d["request_id"] == rid and d["attempts"] == 2, d
    assert d["condition"] == "RetriesExhausted", d
    assert d["error_message"] == "Task timed out after 1.00 seconds", d
    rec = wait_record(srv, rid)
    assert rec["status"] == "timeout" and rec["attempts"] == 2, rec
    hist = rec["attempt_history"]
    assert [h["status"] for h in hist] == ["timeout", "timeout"], hist
    assert all(h["error_message"] == "Task timed out after 1.00 seconds" for h in hist), hist
    assert len(runs_of(srv, name, rid)) == 2


# ---------------------------------------------------------------- redrive


def test_redrive_runs_the_dead_letter_again_as_a_new_event(srv):
    name = unique("async-redrive")
    deploy_py(srv, name, FAILING_PY, **{"async": {"max_retries": 0}})
    event = {"order": 42, "list": [1, 2, 3]}
    rid = enqueue_ok(srv, name, event)
    d = wait_dead_letters(srv, name, 1)[0]
    assert d["request_id"] == rid

    # The fix is deployed, then the dead letter redriven.
    deploy_py(srv, name, PRINTER_PY, **{"async": {"max_retries": 0}})
    r = requests.post(f"{srv.url}/v1/functions/{name}/dead-letters/{d['id']}/redrive",
                      timeout=30)
    new_rid = accepted(r)
    assert new_rid != rid
    rec = wait_record(srv, new_rid)
    assert rec["status"] == "success" and rec["attempts"] == 1, rec
    assert rec["version"] == 2, rec
    wait_for("the redriven run's line", lambda: [p for p in printed(srv, name)
                                                  if p["rid"] == new_rid])
    runs = [p for p in printed(srv, name) if p["rid"] == new_rid]
    assert runs == [{"rid": new_rid, "event": event}], printed(srv, name)

    # The dead letter is gone; a second redrive of it is 404; the first
    # event's record still says how it ended.
    assert dead_letters(srv, name) == []
    assert async_queue(srv, name)["dead_letters"] == 0
    r = requests.post(f"{srv.url}/v1/functions/{name}/dead-letters/{d['id']}/redrive",
                      timeout=30)
    assert_error(r, 404, "not_found")
    assert wait_record(srv, rid)["status"] == "error"


def test_redrive_errors(srv):
    name = unique("async-redrive-err")
    other = unique("async-redrive-other")
    deploy_py(srv, name, FAILING_PY, **{"async": {"max_retries": 0}})
    deploy_py(srv, other, PRINTER_PY)
    enqueue_ok(srv, name, {"order": 5})
    d = wait_dead_letters(srv, name, 1)[0]
    base = f"{srv.url}/v1/functions"
    # A dead letter belongs to its function.
    r = requests.post(f"{base}/{other}/dead-letters/{d['id']}/redrive", timeout=30)
    assert_error(r, 404, "not_found")
    r = requests.post(f"{base}/{unique('nobody')}/dead-letters/{d['id']}/redrive", timeout=30)
    assert_error(r, 404, "not_found")
    for bad in ("abc", "0", "-1", "1.5"):
        r = requests.post(f"{base}/{name}/dead-letters/{bad}/redrive", timeout=30)
        assert_error(r, 400, "bad_request", "id")
    r = requests.post(f"{base}/{name}/dead-letters/987654321/redrive", timeout=30)
    assert_error(r, 404, "not_found")
    r = requests.get(f"{base}/{unique('nobody')}/dead-letters", timeout=30)
    assert_error(r, 404, "not_found")
    assert len(dead_letters(srv, name)) == 1
    assert dead_letters(srv, other) == []


# ---------------------------------------------------------------- idempotency


def test_an_idempotency_key_dedupes_within_a_function(srv):
    name = unique("async-idem")
    other = unique("async-idem-other")
    deploy_py(srv, name, PRINTER_PY)
    deploy_py(srv, other, PRINTER_PY)
    key = "order-" + unique("k")

    first = enqueue(srv, name, {"n": 1}, key=key)
    rid = accepted(first)
    assert "X-Mayfly-Idempotent-Replay" not in first.headers
    # A repeat, even with another body and after the event ran, gives the
    # first id back and queues nothing.
    again = enqueue(srv, name, {"n": 2}, key=key)
    assert accepted(again) == rid
    assert again.headers.get("X-Mayfly-Idempotent-Replay") == "1", dict(again.headers)
    wait_record(srv, rid)
    third = enqueue(srv, name, {"n": 3}, key=key)
    assert accepted(third) == rid
    assert third.headers.get("X-Mayfly-Idempotent-Replay") == "1"

    # Another key, the same key for another function, and no key: new events.
    rid2 = enqueue_ok(srv, name, {"n": 4}, key=key + "-2")
    rid_other = accepted(r := enqueue(srv, other, {"n": 5}, key=key))
    assert "X-Mayfly-Idempotent-Replay" not in r.headers
    rid3 = enqueue_ok(srv, name, {"n": 6})
    assert len({rid, rid2, rid_other, rid3}) == 4

    for x in (rid2, rid3):
        wait_record(srv, x)
    wait_record(srv, rid_other)
    wait_printed(srv, name, 3)
    wait_printed(srv, other, 1)
    time.sleep(0.3)
    runs = printed(srv, name)
    assert sorted((p["rid"], p["event"]["n"]) for p in runs) == sorted(
        [(rid, 1), (rid2, 4), (rid3, 6)]), runs
    assert [(p["rid"], p["event"]["n"]) for p in printed(srv, other)] == [(rid_other, 5)]
    recs = listed(srv, name)
    assert sorted(x["request_id"] for x in recs) == sorted([rid, rid2, rid3]), recs
    q = async_queue(srv, name)
    assert q["enqueued"] == 3 and q["attempts"] == 3, q


def test_concurrent_repeats_of_a_key_make_one_event(srv):
    name = unique("async-idem-race")
    deploy_py(srv, name, PRINTER_PY)
    key = unique("race")
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda i: enqueue(srv, name, {"n": i}, key=key), range(16)))
    ids = {accepted(r) for r in rs}
    assert len(ids) == 1, ids
    replays = [r for r in rs if r.headers.get("X-Mayfly-Idempotent-Replay") == "1"]
    assert len(replays) == 15, [dict(r.headers) for r in rs]
    rid = ids.pop()
    wait_record(srv, rid)
    wait_printed(srv, name, 1)
    time.sleep(0.3)
    assert [p["rid"] for p in printed(srv, name)] == [rid]


@pytest.mark.parametrize("key", [b"", b"k" * 257, b"tab\there", b"caf\xc3\xa9", b"bell\x07",
                                 b"del\x7f"],
                         ids=["empty", "257", "tab", "non-ascii", "control", "del"])
def test_a_bad_idempotency_key_is_400(srv, key):
    name = unique("async-badkey")
    deploy_py(srv, name, ECHO_PY)
    r = enqueue(srv, name, {}, key=key)
    # A control character may already stop the HTTP parser.
    says = ("X-Mayfly-Idempotency-Key", "invalid character in header") \
        if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", key) else "X-Mayfly-Idempotency-Key"
    assert_error(r, 400, "bad_request", says)
    assert async_queue(srv, name)["enqueued"] == 0


def test_idempotency_key_bounds_accepted(srv):
    name = unique("async-goodkey")
    deploy_py(srv, name, ECHO_PY)
    for key in ("k", "k" * 256, "~!@#$%^&*()_+ {}|:\"<>?`-=[]\\;',./"):
        r1 = enqueue(srv, name, {}, key=key)
        r2 = enqueue(srv, name, {}, key=key)
        assert accepted(r2) == accepted(r1), key
        assert r2.headers.get("X-Mayfly-Idempotent-Replay") == "1"


# ---------------------------------------------------------------- destinations


def check_destination_record(doc, *, rid, source, condition, count, event, response,
                             failed):
    assert doc["version"] == "1.0", doc
    assert abs(iso(doc["timestamp"]) - time.time()) < 60, doc
    ctx = doc["requestContext"]
    assert ctx["requestId"] == rid, doc
    assert re.fullmatch(rf"arn:aws:lambda:[a-z0-9-]+:\d{{12}}:function:{source}(:\$LATEST)?",
                        ctx["functionArn"]), ctx
    assert ctx["condition"] == condition, ctx
    assert ctx["approximateInvokeCount"] == count, ctx
    assert doc["requestPayload"] == event, doc
    resp = doc["responseContext"]
    assert resp["statusCode"] == 200 and resp["executedVersion"] == "$LATEST", resp
    if failed:
        assert resp.get("functionError") == "Unhandled", resp
    else:
        assert "functionError" not in resp, resp
    if callable(response):
        response(doc["responsePayload"])
    else:
        assert doc["responsePayload"] == response, doc


def test_on_success_destination_gets_lambdas_record(srv):
    sink = unique("async-sink")
    name = unique("async-src")
    deploy_py(srv, sink, PRINTER_PY)
    deploy_py(srv, name, "def handler(event, context):\n    return {'doubled': event['n'] * 2}\n",
              **{"async": {"on_success": sink}})
    assert fn_info(srv, name)["async"]["on_success"] == sink
    event = {"n": 21, "tag": "é"}
    rid = enqueue_ok(srv, name, event)
    assert wait_record(srv, rid)["status"] == "success"
    got = wait_printed(srv, sink, 1)
    assert len(got) == 1, got
    assert got[0]["rid"] != rid
    check_destination_record(got[0]["event"], rid=rid, source=name, condition="Success",
                             count=1, event=event, response={"doubled": 42}, failed=False)
    # The destination's run is an async event of its own, on record.
    assert wait_record(srv, got[0]["rid"])["function"] == sink
    # A synchronous call is not sent anywhere.
    invoke_ok(srv, name, {"n": 1})
    time.sleep(0.3)
    assert len(printed(srv, sink)) == 1


def test_on_failure_destination_gets_retries_exhausted(srv):
    sink = unique("async-fsink")
    ok_sink = unique("async-ssink")
    name = unique("async-fsrc")
    deploy_py(srv, sink, PRINTER_PY)
    deploy_py(srv, ok_sink, PRINTER_PY)
    deploy_py(srv, name, FAILING_PY,
              **{"async": {"max_retries": 1, "on_failure": sink, "on_success": ok_sink}})
    event = {"order": 9}
    rid = enqueue_ok(srv, name, event)
    wait_dead_letters(srv, name, 1)
    got = wait_printed(srv, sink, 1)

    def error_payload(p):
        assert p["errorType"] == "ValueError" and p["errorMessage"] == "refused order 9", p

    check_destination_record(got[0]["event"], rid=rid, source=name,
                             condition="RetriesExhausted", count=2, event=event,
                             response=error_payload, failed=True)
    time.sleep(0.3)
    assert len(printed(srv, sink)) == 1
    assert printed(srv, ok_sink) == []


def test_a_destination_record_carries_bytes_that_are_not_json(srv):
    """An event is the caller's bytes: what is neither JSON nor UTF-8 goes
    into the destination record as base64, and the record stays JSON."""
    sink = unique("async-bsink")
    name = unique("async-bsrc")
    deploy_py(srv, sink, PRINTER_PY)
    deploy_py(srv, name, "def handler(event, context):\n    return 'seen'\n",
              **{"async": {"on_success": sink, "on_failure": sink, "max_retries": 0}})
    raw = b"\xff\xfe not json \x00"
    rid = accepted(enqueue(srv, name, raw=raw))
    wait_record(srv, rid)
    got = wait_printed(srv, sink, 1)
    doc = got[0]["event"]
    assert doc["requestContext"]["requestId"] == rid, doc
    assert doc["requestPayload"] == {"base64": base64.b64encode(raw).decode()}, doc


def test_destinations_chain_a_to_b_to_c(srv):
    c = unique("async-c")
    b = unique("async-b")
    a = unique("async-a")
    deploy_py(srv, c, PRINTER_PY)
    deploy_py(srv, b, """
def handler(event, context):
    return {"from": event["requestContext"]["requestId"],
            "n": event["responsePayload"]["n"] + 1}
""", **{"async": {"on_success": c}})
    deploy_py(srv, a, "def handler(event, context):\n    return {'n': event['n'] + 1}\n",
              **{"async": {"on_success": b}})
    rid = enqueue_ok(srv, a, {"n": 1})
    got = wait_printed(srv, c, 1)
    doc = got[0]["event"]
    assert doc["requestContext"]["condition"] == "Success", doc
    assert doc["responsePayload"] == {"from": rid, "n": 3}, doc
    # C's request is B's destination record, whose request was A's.
    assert doc["requestPayload"]["requestContext"]["requestId"] == rid, doc
    assert doc["requestPayload"]["responsePayload"] == {"n": 2}, doc
    assert doc["requestPayload"]["requestPayload"] == {"n": 1}, doc
    assert re.search(rf":function:{b}(:|$)", doc["requestContext"]["functionArn"]), doc


# ---------------------------------------------------------------- queue figures


def test_a_backlog_is_listed_as_queued_and_counted(srv):
    name = unique("async-backlog")
    deploy_py(srv, name, SLEEPER_PY, max_concurrency=1, timeout_s=60)
    # The first event holds the one instance while the rest are seen waiting
    # behind it: 8 s, many times what the checks below take on a busy machine.
    ids = [enqueue_ok(srv, name, {"sleep": 8 if i == 0 else 0.05, "i": i}) for i in range(6)]

    def backlog():
        q = listed(srv, name, status="queued")
        return q if len(q) >= 3 else None
    queued = wait_for("a queued backlog", backlog)
    assert all(x["status"] == "queued" and x["function"] == name for x in queued), queued
    assert {x["request_id"] for x in queued} <= set(ids)
    everywhere = listed(srv, name, status="queued", everywhere=True)
    assert {x["request_id"] for x in everywhere} <= set(ids) and len(everywhere) >= 3
    assert len(listed(srv, name, status="queued", limit=2)) == 2
    running = listed(srv, name, status="running")
    assert len(running) <= 1, running

    q = async_queue(srv, name)
    assert q["depth"] >= 3 and q["running"] <= 1, q
    assert q["oldest_age_s"] > 0, q
    m = metrics(srv)
    assert metric(m, "mayfly_async_queue_depth", function=name) >= 3
    assert metric(m, "mayfly_async_oldest_age_seconds", function=name) > 0
    assert metric(m, "mayfly_async_enqueued_total", function=name) == 6
    assert has_metric(m, "mayfly_async_running")

    # One at a time, the backlog drains.
    for rid in ids:
        assert wait_record(srv, rid)["status"] == "success"
    assert listed(srv, name, status="queued") == []
    q = async_queue(srv, name)
    assert q["depth"] == 0 and q["running"] == 0 and q["oldest_age_s"] == 0, q
    assert q["attempts"] == 6, q
    m = metrics(srv)
    assert metric(m, "mayfly_async_queue_depth", function=name) == 0
    assert metric(m, "mayfly_async_attempts_total", function=name) == 6
    # Accepting an event is an fsync'd commit; its start and end are not.
    assert metric(m, "mayfly_queue_commits_total", sync="fsync") >= 1
    assert has_metric(m, "mayfly_queue_commits_total", sync="no")
    assert metric(m, "mayfly_queue_commit_seconds_count") >= 1
    assert metric(m, "mayfly_queue_commit_jobs_count") >= 1
    # max_concurrency 1: no two runs overlapped.
    wait_printed(srv, name, 12)
    phases = [p for p in printed(srv, name) if "phase" in p]
    assert [p["phase"] for p in phases] == ["start", "end"] * 6, phases


def test_bad_list_filters_are_400(srv):
    r = requests.get(f"{srv.url}/v1/invocations", params={"status": "later"}, timeout=10)
    assert_error(r, 400, "bad_request", "status")
    r = requests.get(f"{srv.url}/v1/invocations", params={"function": "a b"}, timeout=10)
    assert_error(r, 400, "bad_request", "function")


def test_cli_invoke_async_prints_the_request_id(srv):
    name = unique("async-cli")
    deploy_py(srv, name, PRINTER_PY)
    p = srv.cli("invoke", name, "--async", "--data", '{"via": "cli"}')
    assert p.returncode == 0, p.stderr
    rid = p.stdout.strip()
    assert UUID.match(rid), p.stdout
    assert wait_record(srv, rid)["status"] == "success"
    assert wait_printed(srv, name, 1) == [{"rid": rid, "event": {"via": "cli"}}]
    p = srv.cli("invoke", unique("nobody"), "--async")
    assert p.returncode == 1 and p.stdout == "", p


def test_deleting_a_function_drops_its_queue_and_dead_letters(srv):
    name = unique("async-gone")
    deploy_py(srv, name, """
import time

def handler(event, context):
    if event.get("fail"):
        raise ValueError("no")
    time.sleep(0.3)
    return 1
""", max_concurrency=1, **{"async": {"max_retries": 0}})
    enqueue_ok(srv, name, {"fail": True})
    wait_dead_letters(srv, name, 1)
    ids = [enqueue_ok(srv, name, {"i": i}) for i in range(5)]
    wait_for("the backlog to start", lambda: async_queue(srv, name)["running"] == 1)

    r = requests.delete(f"{srv.url}/v1/functions/{name}", timeout=30)
    assert r.status_code == 204, r.text
    assert_error(enqueue(srv, name, {}), 404, "not_found")
    # Read at once, while the deleted function's last attempt may still run;
    # checked at the end.
    m = metrics(srv)

    # A new function of the same name starts with nothing queued.
    deploy_py(srv, name, PRINTER_PY)
    q_new = async_queue(srv, name)
    assert dead_letters(srv, name) == []
    time.sleep(1.0)
    ran = {p.get("rid") for p in printed(srv, name)}
    assert not ran & set(ids), "events of the deleted function ran in its successor"
    q = async_queue(srv, name)
    assert q["depth"] == 0 and q["running"] == 0 and q["dead_letters"] == 0, q
    healthy(srv)

    assert q_new["depth"] == 0 and q_new["dead_letters"] == 0, q_new
    assert metric(m, "mayfly_async_queue_depth", function=name) == 0
    assert metric(m, "mayfly_dead_letters", function=name) == 0


# ---------------------------------------------------------------- stopping


def test_sigterm_waits_for_a_running_event(server):
    srv = server("--retry-base-ms", RETRY_BASE_MS)
    name = unique("async-term")
    deploy_py(srv, name, SLEEPER_PY, timeout_s=10)
    key = unique("term")
    rid = enqueue_ok(srv, name, {"sleep": 2}, key=key)
    wait_for("the event to start", lambda: runs_of(srv, name, rid))
    srv.stop()  # asserts exit 0

    # The stop let the running attempt finish: one attempt, never cut short
    # and never run again.
    srv.start()
    rec = wait_record(srv, rid)
    assert rec["status"] == "success", rec
    assert rec["attempts"] == 1, rec
    assert [h["status"] for h in rec["attempt_history"]] == ["success"], rec
    wait_printed(srv, name, 2)
    assert [p["phase"] for p in printed(srv, name) if p["rid"] == rid] == ["start", "end"]
    # The idempotency key outlives the restart.
    r = enqueue(srv, name, {"sleep": 0}, key=key)
    assert accepted(r) == rid
    assert r.headers.get("X-Mayfly-Idempotent-Replay") == "1"


def test_an_event_cut_short_by_the_stop_runs_after_the_restart(server):
    srv = server("--retry-base-ms", RETRY_BASE_MS, "--shutdown-grace", "1")
    name = unique("async-cut")
    deploy_py(srv, name, SLEEPER_PY, timeout_s=10)
    # The event needs 6 s; the stop gives it 1 s and then hands it back to
    # the queue: its first attempt ends interrupted, not in success.
    rid = enqueue_ok(srv, name, {"sleep": 6})
    wait_for("the event to start", lambda: runs_of(srv, name, rid))
    srv.stop()

    srv.start()
    rec = wait_record(srv, rid)
    assert rec["status"] == "success", rec
    hist = rec["attempt_history"]
    assert hist[-1]["status"] == "success", hist
    cut = [h for h in hist if h["status"] == "interrupted"]
    assert len(cut) == 1, hist
    assert cut[0]["error_type"] == "Mayfly.Interrupted", cut
    assert hist.index(cut[0]) < len(hist) - 1, hist
    assert [h["attempt"] for h in hist] == list(range(1, len(hist) + 1)), hist
    # Both runs saw the same request id.
    wait_for("the second run's line", lambda: len(runs_of(srv, name, rid)) >= 2)
    assert len(runs_of(srv, name, rid)) == 2, printed(srv, name)
    assert async_queue(srv, name)["depth"] == 0


def test_events_arriving_during_a_stop_are_refused_or_kept(server):
    srv = server("--retry-base-ms", RETRY_BASE_MS)
    name = unique("async-arrive")
    deploy_py(srv, name, PRINTER_PY)
    ok, refused, failed = [], [], []
    stop = threading.Event()

    def hammer():
        s = requests.Session()
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = enqueue(srv, name, {"i": i}, session=s, timeout=10)
            except requests.RequestException as e:
                failed.append(e)
                s = requests.Session()
                time.sleep(0.01)
                continue
            if r.status_code == 202:
                ok.append(accepted(r))
            else:
                refused.append(r)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for("some events accepted", lambda: len(ok) >= 50)
    srv.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(60)
    stop.set()
    for t in threads:
        t.join(60)
    assert rc == 0, srv.logs()
    for r in refused:
        assert_error(r, 503, "unavailable")

    srv.start()
    for rid in ok:
        assert wait_record(srv, rid)["status"] == "success", rid
    ran = {}

    def every_one_printed():
        ran.clear()
        for p in printed(srv, name):
            ran[p["rid"]] = ran.get(p["rid"], 0) + 1
        return not set(ok) - set(ran)
    try:
        wait_for("a line of every accepted event", every_one_printed)
    except AssertionError:
        pass  # said precisely below
    missing = set(ok) - set(ran)
    assert not missing, f"{len(missing)} accepted events never ran"
    print(f"stop under load: {len(ok)} accepted, {len(refused)} refused (503), "
          f"{len(failed)} connection errors, {sum(v > 1 for v in ran.values())} ran twice")


# ---------------------------------------------------------------- sync first


STAMPED_PY = """
import os, time

def handler(event, context):
    entered = time.time()
    if "sync" not in event:
        time.sleep(float(os.environ.get("EVENT_SLEEP", "0")))
    return {"entered_ms": entered * 1000, "i": event.get("i")}
"""


def test_a_backlog_does_not_slow_synchronous_calls(server):
    """Synchronous calls go before queued events: a call to a function with
    a backlog takes its next free instance ahead of every waiting event, and
    a call to another function does not wait for the backlog at all. Checked
    on the server's own records and the handler's own clock (the same
    machine's), by the order of events rather than by how long calls take;
    bench/ measures how long."""
    srv = server()
    name = unique("async-prio")
    other = unique("async-prio-other")
    # One instance and events of 0.5 s: a backlog of 40 lasts 20 s or more,
    # far longer than the few calls below take however busy the machine.
    deploy_py(srv, name, STAMPED_PY, max_concurrency=1, env={"EVENT_SLEEP": "0.5"})
    deploy_py(srv, other, STAMPED_PY)
    invoke_ok(srv, name, {"sync": -1})
    invoke_ok(srv, other, {"sync": -1})

    n_events = 40
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda i: accepted(enqueue(srv, name, {"i": i})), range(n_events)))

    calls = []
    for k in range(3):
        for fn in (name, other):
            r = invoke_ok(srv, fn, {"sync": k})
            rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
            calls.append((fn, iso(rec["start"]) * 1000, r.json()["entered_ms"]))

    def attempt_starts():
        starts = {}
        for rid in ids:
            rec = fetch_record(srv, rid)
            hist = (rec or {}).get("attempt_history") or []
            starts[rid] = iso(hist[0]["start"]) * 1000 if hist else math.inf
        return starts
    starts = attempt_starts()
    for fn, accepted_ms, entered_ms in calls:
        # Every event was accepted before the call; some started only after
        # the call's handler did: the call did not wait behind the backlog.
        assert any(s > entered_ms for s in starts.values()), (
            f"a call to {fn} ran only after every queued event had started")
        if fn == name:
            # While the call waited for the function's one instance and ran
            # on it, no queued event was handed the instance.
            jumped = [s for s in starts.values() if accepted_ms < s < math.floor(entered_ms)]
            assert not jumped, (f"events started between the call's acceptance "
                                f"({accepted_ms:.0f}) and its handler ({entered_ms:.0f}): {jumped}")

    # The rest of the backlog, at full speed now, runs to the end.
    deploy_py(srv, name, STAMPED_PY, max_concurrency=4, env={"EVENT_SLEEP": "0"})
    for rid in ids:
        assert wait_record(srv, rid)["status"] == "success"
    q = async_queue(srv, name)
    assert q["depth"] == 0 and q["attempts"] == n_events, q


# Both answer when they ran, by the host's clock (ms).
CPU_HOG_PY = """
import time

def handler(event, context):
    t0 = time.time()
    end = time.process_time() + event["cpu_s"]
    while time.process_time() < end:
        pass
    return {"t0": t0 * 1000, "t1": time.time() * 1000}
"""

TIMED_SLEEPER_PY = """
import time

def handler(event, context):
    t0 = time.time()
    time.sleep(event["sleep"])
    return {"t0": t0 * 1000, "t1": time.time() * 1000}
"""


def spans(records):
    """When each handler ran, as it answered: (start, end) in ms."""
    return [(r["result"]["t0"], r["result"]["t1"]) for r in records]


def peak_overlap(records):
    """The most handlers that ran at once (an end sorts before a start at
    the same instant)."""
    edges = sorted([(a, 1) for a, _ in spans(records)] + [(b, -1) for _, b in spans(records)])
    peak = running = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.serial  # attempts waiting for a CPU (other tests' servers) would rightly hold it down
def test_waiting_events_of_an_io_bound_function_climb_to_max_concurrency(srv):
    """The queue's own limit starts at 4 attempts and, while they wait on
    something other than a CPU (here a sleep), doubles each round up to the
    function's max_concurrency."""
    name = unique("io-bound")
    deploy_py(srv, name, TIMED_SLEEPER_PY, max_concurrency=12, timeout_s=60)
    rids = [enqueue_ok(srv, name, {"sleep": 0.3}) for _ in range(48)]
    records = [wait_record(srv, rid) for rid in rids]
    assert all(r["status"] == "success" for r in records), records
    assert peak_overlap(records) == 12, spans(records)
    q = async_queue(srv, name)
    assert q["limit"] == 12 and q["depth"] == 0, q
    assert metric(metrics(srv), "mayfly_async_limit", function=name) == 12


def test_cpu_bound_events_sharing_one_cpu_run_fewer_at_once(server):
    """Attempts whose runtimes mostly wait, runnable, for the one CPU they
    share make the limit fall from where it started towards its floor (2),
    far below max_concurrency: more instances would only queue for the same
    CPU. Every event still runs."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # the server and its sandboxes inherit it
    try:
        srv = server()
    finally:
        os.sched_setaffinity(0, cpus)
    name = unique("cpu-bound")
    # 1,769 MB buys a whole CPU, so no quota throttles a runtime: it waits
    # only for the CPU the others hold.
    deploy_py(srv, name, CPU_HOG_PY, memory_mb=1769, max_concurrency=8, timeout_s=300)
    rids = [enqueue_ok(srv, name, {"cpu_s": 0.2}) for _ in range(24)]
    records = [wait_record(srv, rid, timeout=600) for rid in rids]
    assert all(r["status"] == "success" for r in records), records
    assert peak_overlap(records) <= 4, spans(records)
    q = async_queue(srv, name)
    assert q["limit"] < 4 and q["depth"] == 0, q
    assert metric(metrics(srv), "mayfly_async_limit", function=name) == q["limit"]


def test_concurrency_0_pauses_a_function_and_raising_it_resumes(srv):
    """max_concurrency 0 is Lambda's reserved concurrency 0: every call
    throttles at once, queued events wait (no attempt), and raising it runs
    them; null puts the default back."""
    name, other = unique("paused"), unique("paused-other")
    deploy_py(srv, name, PRINTER_PY, max_concurrency=0)
    deploy_py(srv, other, PRINTER_PY)
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()[
        "max_concurrency"] == 0

    r = invoke(srv, name, {"sync": True})
    assert_error(r, 429, "throttled", name, "concurrency", "0")

    rids = [enqueue_ok(srv, name, {"order": i}) for i in range(3)]
    # Another function's event runs meanwhile: the dispatcher has had its
    # passes, and still none of the paused function's events started.
    wait_record(srv, enqueue_ok(srv, other, {"order": 0}))
    q = async_queue(srv, name)
    assert q["depth"] == 3 and q["running"] == 0 and q["attempts"] == 0, q
    assert printed(srv, name) == [], "a paused function ran"

    # A bad value is refused, and the function stays paused.
    for bad in (-1, 1001, "2", 1.5):
        r = requests.put(f"{srv.url}/v1/functions/{name}", json={"max_concurrency": bad},
                         timeout=10)
        assert_error(r, 400, "bad_request", "max_concurrency", "0 to 1000")
    assert async_queue(srv, name)["attempts"] == 0

    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"max_concurrency": None},
                     timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["max_concurrency"] == 10, r.json()
    for rid in rids:
        assert wait_record(srv, rid)["status"] == "success"
    assert sorted(x["event"]["order"] for x in wait_printed(srv, name, 3)) == [0, 1, 2]
    invoke_ok(srv, name, {"sync": True})
