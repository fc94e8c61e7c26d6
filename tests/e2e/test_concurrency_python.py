"""Many calls per instance ("instance_concurrency": N) on the python3
runtime: N worker processes forked after the handler's module is imported.
The function draws a token when its module is imported, so calls that name
the same token ran in the same instance (its workers share what the import
made).

8 slow calls at once run in one instance and overlap in time, each with
its own result and its own log lines (print, sys.stderr, logging, and a
line left unfinished), in the text and the JSON log format, with metering
per call; a call past its deadline fails alone and the instance goes on;
a worker that dies in a call fails that call alone and is replaced."""


import pytest
import requests

from conftest import deploy, get_logs, get_record, invoke, invoke_all, unique, wait_for

SLOTS = 8

PY_FN = r"""
import logging, os, sys, time, uuid

TOKEN = uuid.uuid4().hex  # once per instance: drawn before the workers fork
log = logging.getLogger("slow")


def handler(event, context):
    tag = event["tag"]
    start = time.time()
    print("stdout line", tag)
    sys.stderr.write("stderr line %s\n" % tag)
    log.warning("logger line %s", tag)
    if event.get("exit"):
        os._exit(3)
    time.sleep(int(event["sleep_ms"]) / 1000)
    seen = 0
    if event.get("barrier"):
        # Waits (40 s at most) until the batch's every call has come in: only
        # an instance serving all of them at once lets them all through.
        folder = "/tmp/" + event["barrier"]
        os.makedirs(folder, exist_ok=True)
        open(os.path.join(folder, tag), "w").close()
        for _ in range(400):
            seen = len(os.listdir(folder))
            if seen >= event["of"]:
                break
            time.sleep(0.1)
    sys.stdout.write("slept " + tag)  # unfinished: the runtime ends it with the call
    return {"rid": context.aws_request_id, "tag": tag, "token": TOKEN, "start": start,
            "end": time.time(), "remaining_ms": context.get_remaining_time_in_millis(),
            "seen": seen}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()




def warm(srv, name):
    """One call, so that the instance is up before the calls that count:
    returns its token."""
    r = invoke(srv, name, {"tag": "warm", "sleep_ms": "0"}, timeout=300)
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    return r.json()["token"]


def messages(srv, name, rid=None):
    return [e.get("message", "") for e in get_logs(srv, name, rid)]


def ok(r):
    return r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers


def check_eight_slow_calls(srv, name, plain_lines):
    """8 calls of 1 s at once: one instance, overlapping, each with its own
    result, its own lines (plain_lines(tag) and "slept TAG") and metering."""
    token = warm(srv, name)
    tags = [f"call{i}x" for i in range(SLOTS)]
    responses = invoke_all(srv, name, [{"tag": t, "sleep_ms": "1000"} for t in tags])

    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
    timeout_ms = fn["timeout_s"] * 1000
    results = []
    for tag, r in zip(tags, responses):
        assert ok(r), (tag, r.status_code, r.text)
        out = r.json()
        assert out["tag"] == tag, out  # its own result
        assert out["rid"] == r.headers["X-Mayfly-Request-Id"], out
        # Its own deadline: never past the function's own timeout.
        assert 0 < out["remaining_ms"] <= timeout_ms, (out, timeout_ms)
        results.append(out)
    assert {out["token"] for out in results} == {token}, results  # one instance
    assert len({out["rid"] for out in results}) == SLOTS
    # They ran side by side: each started before another one ended.
    for out in results:
        assert any(o is not out and o["start"] < out["end"] and out["start"] < o["end"]
                   for o in results), (out, results)

    for tag, out in zip(tags, results):
        rid = out["rid"]
        others = [t for t in tags if t != tag]
        want = plain_lines(tag) + [f"slept {tag}"]

        def all_lines(rid=rid, want=want):
            msgs = messages(srv, name, rid)
            return msgs if all(any(w in m for m in msgs) for w in want) else None
        msgs = wait_for(f"the log lines of {tag}", all_lines)
        assert not any(f"line {o}" in m or f"slept {o}" in m for m in msgs for o in others), (
            tag, msgs)
        # Each line is tagged once, by the logger itself where it has one
        # (a logger that did not know the call would say "undefined" or
        # nothing, and the runtime's stream would tag its line again).
        assert not any("undefined" in m or m.count(rid) > 1 or '\\"level\\"' in m
                       for m in msgs), (tag, msgs)

        rec = get_record(srv, rid)
        assert rec["status"] == "success", rec
        assert rec["billed_ms"] >= 1 and rec["billed_ms"] >= rec["duration_ms"], rec
        assert isinstance(rec["cpu_ms"], (int, float)) and rec["cpu_ms"] >= 0, rec
        assert isinstance(rec["max_rss_kb"], int) and rec["max_rss_kb"] > 0, rec
    return tags


def check_late_call_fails_alone(srv, name, timeout_s):
    """One of 8 calls sleeps past its deadline: it times out, the other 7
    succeed in the same instance, and then all 8 slots serve again; the
    refusal of the late answer logs nothing alarming."""
    token = warm(srv, name)
    tags = [f"late{i}x" for i in range(SLOTS)]
    events = [{"tag": t, "sleep_ms": "1000"} for t in tags]
    events[0]["sleep_ms"] = str((timeout_s + 3) * 1000)
    responses = invoke_all(srv, name, events)

    late = responses[0]
    assert late.headers.get("X-Mayfly-Function-Error") == "Unhandled", late.text
    assert late.json()["errorMessage"].startswith("Task timed out"), late.text
    assert get_record(srv, late.headers["X-Mayfly-Request-Id"])["status"] == "timeout"
    for tag, r in zip(tags[1:], responses[1:]):
        assert ok(r), (tag, r.status_code, r.text)
        assert r.json()["tag"] == tag and r.json()["token"] == token, r.text

    wait_for("the late call's last line",
             lambda: any(f"slept {tags[0]}" in m for m in messages(srv, name)))
    again = invoke_all(srv, name, [{"tag": f"again{i}x", "sleep_ms": "500"} for i in range(SLOTS)])
    for r in again:
        assert ok(r), r.text
        assert r.json()["token"] == token, r.text
    lines = messages(srv, name)
    assert not any("mayfly runtime" in m for m in lines), [m for m in lines if "runtime" in m]


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_eight_slow_calls_share_one_instance_and_overlap_each_with_its_own_result_and_logs(
        srv, log_format):
    name = unique("conc-py")
    deploy(srv, name, {"app.py": PY_FN}, instance_concurrency=SLOTS, log_format=log_format)
    check_eight_slow_calls(srv, name, lambda tag: [f"stdout line {tag}", f"stderr line {tag}",
                                                   f"logger line {tag}"])


def test_a_call_past_its_deadline_fails_alone_and_the_instance_goes_on(srv):
    name = unique("conc-py-late")
    deploy(srv, name, {"app.py": PY_FN}, instance_concurrency=SLOTS, timeout_s=15)
    check_late_call_fails_alone(srv, name, 15)


def test_a_worker_that_dies_fails_its_call_alone_and_is_replaced(srv):
    name = unique("conc-py-exit")
    deploy(srv, name, {"app.py": PY_FN}, instance_concurrency=SLOTS)
    token = warm(srv, name)
    tags = [f"exit{i}x" for i in range(SLOTS)]
    events = [{"tag": t, "sleep_ms": "1000"} for t in tags]
    events[0]["exit"] = True
    responses = invoke_all(srv, name, events)

    dead = responses[0]
    rid = dead.headers["X-Mayfly-Request-Id"]
    assert dead.headers.get("X-Mayfly-Function-Error") == "Unhandled", dead.text
    assert dead.json()["errorType"] == "Runtime.ExitError", dead.text
    assert dead.json()["errorMessage"] == (
        f"RequestId: {rid} Error: Runtime exited with error: exit status 3"), dead.text
    assert get_record(srv, rid)["status"] == "error"
    for tag, r in zip(tags[1:], responses[1:]):
        assert ok(r), (tag, r.status_code, r.text)
        assert r.json()["tag"] == tag and r.json()["token"] == token, r.text
    # The worker was forked again: 8 calls are in the instance at once (each
    # waits until all 8 have come in).
    again = invoke_all(srv, name, [{"tag": f"again{i}x", "sleep_ms": "0", "barrier": "again",
                                  "of": SLOTS} for i in range(SLOTS)])
    for r in again:
        assert ok(r), r.text
        assert r.json()["token"] == token and r.json()["seen"] == SLOTS, r.text
