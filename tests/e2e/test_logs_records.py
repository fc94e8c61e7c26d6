"""What a user reads after a call: the function's log lines tagged with the
request id (plain, filtered, followed live) and the invocation record with
every field filled, over HTTP and through the CLI."""

import json
import math
import os
import re
import select
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import (MAYFLY_BIN, cli_env, deploy_py, get_logs, get_record, healthy,
                      invoke_error, invoke_ok, unique, wait_for)

PRINTS = """
import sys

def handler(event, context):
    print("hello-from-" + event["marker"])
    print("hello-from-" + event["marker"] + "-err", file=sys.stderr)
    return "printed"
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


@pytest.fixture(scope="module")
def printer(srv):
    name = unique("printer")
    deploy_py(srv, name, PRINTS)
    return name


def marker():
    return os.urandom(6).hex()


def lines_with(srv, name, text, request_id=None, count=1):
    """Waits until the log holds count lines containing text."""
    def matching():
        found = [x for x in get_logs(srv, name, request_id) if text in x["message"]]
        return found if len(found) >= count else None
    return wait_for(f"{count} log line(s) with {text!r}", matching)


# ---------------------------------------------------------------- logs


def test_logs_hold_stdout_and_stderr_tagged_with_the_request_id(srv, printer):
    m = marker()
    before = datetime.now(timezone.utc) - timedelta(milliseconds=1)  # times are whole ms
    r = invoke_ok(srv, printer, {"marker": m})
    rid = r.headers["X-Mayfly-Request-Id"]
    lines = lines_with(srv, printer, f"hello-from-{m}", request_id=rid, count=2)
    after = datetime.now(timezone.utc)
    by_stream = {x["stream"]: x for x in lines}
    assert set(by_stream) == {"stdout", "stderr"}, lines
    assert by_stream["stdout"]["message"] == f"hello-from-{m}"
    assert by_stream["stderr"]["message"] == f"hello-from-{m}-err"
    for x in lines:
        assert x["request_id"] == rid
        t = datetime.fromisoformat(x["time"].replace("Z", "+00:00"))
        assert before <= t <= after, (before, x["time"], after)

    # Another call's lines are not in this call's log.
    other = marker()
    invoke_ok(srv, printer, {"marker": other})
    lines_with(srv, printer, other, count=2)
    assert not [x for x in get_logs(srv, printer, rid) if other in x["message"]]


def test_logs_response_is_ndjson(srv, printer):
    m = marker()
    invoke_ok(srv, printer, {"marker": m})
    lines_with(srv, printer, m, count=2)
    r = requests.get(f"{srv.url}/v1/functions/{printer}/logs", timeout=10)
    assert r.status_code == 200
    assert "ndjson" in r.headers["Content-Type"]
    for line in r.text.splitlines():
        doc = json.loads(line)
        assert set(doc) >= {"time", "request_id", "stream", "message"}, doc


def test_cli_logs_shows_the_calls_lines(srv, printer):
    m = marker()
    rid = invoke_ok(srv, printer, {"marker": m}).headers["X-Mayfly-Request-Id"]
    lines_with(srv, printer, m, request_id=rid, count=2)

    p = srv.cli("logs", printer, "--request", rid)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    # The function's two lines, between the platform's START, END and REPORT.
    assert len(out) == 5, out
    assert "START RequestId: " in out[0] and "END RequestId: " in out[3], out
    assert "REPORT RequestId: " in out[4], out
    for line in out:
        assert rid in line, line
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line), line
    assert all(f"hello-from-{m}" in line for line in out[1:3]), out

    p = srv.cli("logs", printer, "--request", rid, "--json")
    assert p.returncode == 0, p.stderr
    docs = [json.loads(x) for x in p.stdout.splitlines()]
    assert {d["stream"] for d in docs} == {"stdout", "stderr"}

    p = srv.cli("logs", printer)
    assert p.returncode == 0
    assert f"hello-from-{m}" in p.stdout

    p = srv.cli("logs", printer, "--request", rid, "--since", "2999-01-01T00:00:00Z")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "", "--since in the future still printed lines"
    p = srv.cli("logs", printer, "--since", "yesterday-ish")
    assert p.returncode == 1 and "since" in p.stderr and "HTTP 400" in p.stderr, p

    p = srv.cli("logs", "no-such-function-" + m)
    assert p.returncode in (0, 1)
    if p.returncode == 1:
        assert "HTTP 404" in p.stderr, p.stderr
    else:
        assert p.stdout == ""


def test_follow_streams_lines_of_calls_made_after_it_started(srv, printer):
    with requests.get(f"{srv.url}/v1/functions/{printer}/logs",
                      params={"follow": "1"}, stream=True, timeout=(30, 60)) as r:
        assert r.status_code == 200
        m = marker()
        rid = invoke_ok(srv, printer, {"marker": m}).headers["X-Mayfly-Request-Id"]
        deadline = time.monotonic() + 60
        found = None
        for line in r.iter_lines():
            if line:
                doc = json.loads(line)
                if m in doc["message"]:
                    found = doc
                    break
            assert time.monotonic() < deadline, "the followed log did not show the new line"
        assert found and found["request_id"] == rid, found
    healthy(srv)


def test_cli_logs_follow_prints_new_lines_as_they_come(srv, printer):
    proc = subprocess.Popen([MAYFLY_BIN, "logs", printer, "--follow"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=cli_env(srv.url))
    try:
        # A line from a call made while it runs, however long it takes to
        # connect: one call after another until one of their lines shows.
        buf = b""
        deadline = time.monotonic() + 60
        shown = False
        while not shown:
            m = marker()
            invoke_ok(srv, printer, {"marker": m})
            wait_until = min(deadline, time.monotonic() + 1)
            while not shown:
                left = wait_until - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([proc.stdout], [], [], left)
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    assert chunk, f"mayfly logs --follow ended: {proc.stderr.read()!r}"
                    buf += chunk
                    shown = f"hello-from-{m}".encode() in buf
            assert shown or time.monotonic() < deadline, (
                f"mayfly logs --follow did not print the new line: {buf[-2000:]!r}")
        assert proc.poll() is None, "--follow must keep running"
    finally:
        proc.terminate()
        proc.wait(60)


FLOOD = """
def handler(event, context):
    line = "y" * 1023
    for _ in range(3 * 1024):  # 3 MiB of output
        print(line)
    return "flooded"
"""


def test_log_lines_are_bounded_per_invocation(srv):
    name = unique("flood")
    deploy_py(srv, name, FLOOD, timeout_s=20)
    r = invoke_ok(srv, name, timeout=40)
    assert r.json() == "flooded"
    rid = r.headers["X-Mayfly-Request-Id"]
    # The note that says the rest was dropped is the last line kept.
    lines_with(srv, name, "the rest is dropped", request_id=rid)
    total = sum(len(x["message"]) for x in get_logs(srv, name, rid))
    assert 0 < total <= (1 << 20) + 4096, f"{total} bytes of log for one call"
    healthy(srv)


# ---------------------------------------------------------------- records

RECORDED = """
def handler(event, context):
    return sum(range(event.get("n", 1000)))
"""

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d)$")
FIELDS = {"request_id", "function", "version", "status", "start", "duration_ms", "billed_ms",
          "memory_mb", "max_rss_kb", "cpu_ms", "cold_start", "init_ms", "error_type",
          "error_message", "attempts"}


@pytest.fixture(scope="module")
def recorded(srv):
    """A function called twice (cold, then warm); its name and responses."""
    name = unique("rec")
    deploy_py(srv, name, RECORDED, memory_mb=256)
    before = datetime.now(timezone.utc)
    first = invoke_ok(srv, name, {"n": 100000})
    second = invoke_ok(srv, name, {"n": 10})
    return name, first, second, before


def test_a_success_record_has_every_field_filled(srv, recorded):
    name, first, _, before = recorded
    rid = first.headers["X-Mayfly-Request-Id"]
    rec = get_record(srv, rid)
    assert FIELDS <= set(rec), f"missing fields: {FIELDS - set(rec)}"
    assert rec["request_id"] == rid
    assert rec["function"] == name
    assert rec["version"] == 1
    assert rec["status"] == "success"
    assert ISO.match(rec["start"]), rec["start"]
    start = datetime.fromisoformat(rec["start"].replace("Z", "+00:00"))
    assert before - timedelta(milliseconds=1) <= start <= datetime.now(timezone.utc), (
        rec["start"], before)
    assert rec["duration_ms"] > 0
    assert rec["billed_ms"] >= 1 and rec["billed_ms"] == max(1, math.ceil(rec["duration_ms"])), rec
    assert rec["billed_ms"] == int(first.headers["X-Mayfly-Billed-Ms"])
    assert rec["duration_ms"] == pytest.approx(float(first.headers["X-Mayfly-Duration-Ms"]),
                                               abs=1)
    assert rec["memory_mb"] == 256
    assert isinstance(rec["max_rss_kb"], int) and rec["max_rss_kb"] > 0, rec
    assert rec["max_rss_kb"] < 256 * 1024, rec
    assert isinstance(rec["cpu_ms"], (int, float)) and rec["cpu_ms"] >= 0, rec
    assert rec["cold_start"] is True
    assert rec["init_ms"] > 0, rec
    assert rec["error_type"] is None and rec["error_message"] is None, rec
    assert rec["attempts"] == 1


def test_a_warm_record_says_so(srv, recorded):
    _, _, second, _ = recorded
    rec = get_record(srv, second.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "success"
    assert rec["cold_start"] is False
    assert rec["init_ms"] in (0, None), rec
    assert rec["max_rss_kb"] > 0


PY_RAISES = """
def handler(event, context):
    raise KeyError("missing-thing")
"""


def test_an_error_record_carries_the_error(srv):
    name = unique("rec-err")
    deploy_py(srv, name, PY_RAISES)
    r, err = invoke_error(srv, name)
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "error"
    assert rec["error_type"] == "KeyError" == err["errorType"]
    assert "missing-thing" in rec["error_message"]
    assert rec["duration_ms"] > 0 and rec["billed_ms"] >= 1
    assert rec["attempts"] == 1


def test_a_functions_records_are_listed_newest_first(srv, recorded):
    name, first, second, _ = recorded
    ids = [first.headers["X-Mayfly-Request-Id"], second.headers["X-Mayfly-Request-Id"]]
    get_record(srv, ids[1])
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", timeout=10)
    assert r.status_code == 200, r.text
    listed = [x["request_id"] for x in r.json()["invocations"]]
    assert listed == ids[::-1], listed
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 1},
                     timeout=10)
    assert [x["request_id"] for x in r.json()["invocations"]] == [ids[1]]
    r = requests.get(f"{srv.url}/v1/invocations",
                     params={"function": name, "status": "success"}, timeout=10)
    assert {x["request_id"] for x in r.json()["invocations"]} == set(ids)


def test_unknown_record_is_404(srv):
    r = requests.get(f"{srv.url}/v1/invocations/00000000-0000-0000-0000-000000000000",
                     timeout=10)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_cli_invocations_and_invocation(srv, recorded):
    name, first, second, _ = recorded
    ids = [first.headers["X-Mayfly-Request-Id"], second.headers["X-Mayfly-Request-Id"]]
    get_record(srv, ids[1])

    p = srv.cli("invocations", name)
    assert p.returncode == 0, p.stderr
    rows = [line.split() for line in p.stdout.splitlines()]
    assert rows[0] == ["REQUEST_ID", "STATUS", "START", "DURATION_MS", "BILLED_MS", "COLD",
                       "MAX_RSS_KB"], rows[0]
    assert [row[0] for row in rows[1:]] == ids[::-1], p.stdout
    newest, oldest = rows[1], rows[2]
    assert newest[1] == "success" and newest[5] == "no", newest
    assert oldest[5] == "yes", oldest
    assert int(oldest[6]) > 0 and int(oldest[4]) >= 1, oldest

    p = srv.cli("invocations", name, "--limit", "1")
    assert p.returncode == 0, p.stderr
    assert [line.split()[0] for line in p.stdout.splitlines()[1:]] == [ids[1]]

    p = srv.cli("invocations", name, "--status", "success", "--json")
    assert p.returncode == 0, p.stderr
    assert {x["request_id"] for x in json.loads(p.stdout)["invocations"]} == set(ids)

    p = srv.cli("invocations", name, "--status", "bogus")
    assert p.returncode == 2 and "--status must be one of" in p.stderr, p

    p = srv.cli("invocations", name, "--limit", "x")
    assert p.returncode == 2

    p = srv.cli("invocation", ids[0])
    assert p.returncode == 0, p.stderr
    rec = json.loads(p.stdout)
    assert rec == get_record(srv, ids[0])
    assert "\n  " in p.stdout, "invocation prints indented JSON"

    p = srv.cli("invocation", "00000000-0000-0000-0000-000000000000")
    assert p.returncode == 1 and "HTTP 404" in p.stderr, p
    p = srv.cli("invocation")
    assert p.returncode == 2
