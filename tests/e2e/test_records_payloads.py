"""A call's record keeps its event and its result (or error document), as
the function's "record" settings say: all of them, only failed calls', or
none; cut at max_payload_kb and saying so; with the values of listed member
names redacted at any depth, so that a redacted secret is nowhere in the
data directory. GET /v1/invocations/ID shows them (JSON as JSON, text as a
string, other bytes as base64), /event and /result give the bytes as kept,
and `mayfly invocation ID --event/--result` writes them out."""

import base64
import json
import os
import subprocess
import time

import pytest
import requests

from conftest import (MAYFLY_BIN, assert_error, deploy_py, get_record, invoke, invoke_error,
                      invoke_ok, run_cli, unique)

ECHO = r"""
import base64, json
def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise ValueError("failing as asked")
    if isinstance(event, dict) and "answer" in event:
        return event["answer"]
    return {"got": event}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def deploy_echo(srv, **record):
    name = unique("rec")
    if record:
        deploy_py(srv, name, ECHO, record=record)
    else:
        deploy_py(srv, name, ECHO)
    return name


def payload(srv, rid, which):
    return requests.get(f"{srv.url}/v1/invocations/{rid}/{which}", timeout=30)


def test_a_calls_record_holds_its_event_and_result(srv):
    name = deploy_echo(srv)
    event = {"order": 42, "items": ["a", "b"], "note": "héllo"}
    r = invoke_ok(srv, name, event)
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["event"] == event
    assert rec["result"] == {"got": event}
    assert rec["event_bytes"] == len(json.dumps(event).encode())
    assert rec["result_bytes"] == len(r.content)
    assert not rec["event_truncated"] and not rec["event_redacted"]
    # The bytes as they came, byte for byte.
    ev = payload(srv, rec["request_id"], "event")
    assert ev.status_code == 200 and ev.content == json.dumps(event).encode()
    assert payload(srv, rec["request_id"], "result").content == r.content


def test_an_errors_record_holds_the_error_document(srv):
    name = deploy_echo(srv)
    r, doc = invoke_error(srv, name, {"fail": True})
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "error"
    assert rec["event"] == {"fail": True}
    assert rec["result"]["errorType"] == "ValueError"
    assert rec["result"]["errorMessage"] == doc["errorMessage"]


def test_redaction_at_any_depth_and_the_secret_is_nowhere_on_disk(srv):
    name = deploy_echo(srv)
    secrets = ["hunter2-%d-%s" % (i, unique("s")) for i in range(6)]
    event = {
        "user": "ann",
        "Password": secrets[0],
        "deep": [{"x": {"api_key": secrets[1], "keep": "visible"}}, {"TOKEN": {"nested": secrets[2]}}],
        "headers": {"Authorization": "Bearer " + secrets[3], "Set-Cookie": [secrets[4]]},
        "pass\u0077ord_not": "kept",
        "passwords": "kept too",
        "note": "the word password as a value is kept",
        "cookie": 12345,
        "secret": None,
        "apikey": secrets[5],
    }
    r = invoke_ok(srv, name, event)
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    ev = rec["event"]
    assert rec["event_redacted"] and rec["result_redacted"]
    assert ev["Password"] == "[redacted]" and ev["apikey"] == "[redacted]"
    assert ev["deep"][0]["x"] == {"api_key": "[redacted]", "keep": "visible"}
    assert ev["deep"][1]["TOKEN"] == "[redacted]"
    assert ev["headers"] == {"Authorization": "[redacted]", "Set-Cookie": "[redacted]"}
    assert ev["cookie"] == "[redacted]" and ev["secret"] == "[redacted]"
    assert ev["passwords"] == "kept too" and ev["pass" + "word_not"] == "kept"
    assert ev["note"] == event["note"] and ev["user"] == "ann"
    assert rec["result"]["got"] == ev
    # Written out (the records are committed before the record shows), the
    # secrets are in no file of the data directory, the WAL included.
    found = subprocess.run(["grep", "-rlaF", "-e", secrets[0], "-e", secrets[1], "-e", secrets[2],
                            "-e", secrets[3], "-e", secrets[4], "-e", secrets[5],
                            str(srv.data_dir)], capture_output=True, text=True)
    assert found.returncode == 1, f"a secret was written to {found.stdout}"


def test_a_functions_own_redact_list(srv):
    name = deploy_echo(srv, redact=["ssn", "Card-Number"])
    r = invoke_ok(srv, name, {"ssn": "123", "card-number": "4111", "password": "now kept"})
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["event"] == {"ssn": "[redacted]", "card-number": "[redacted]",
                            "password": "now kept"}
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
    assert fn["record"] == {"payloads": "full", "max_payload_kb": 64,
                            "redact": ["ssn", "Card-Number"]}


def test_a_payload_over_the_limit_is_cut_and_says_so(srv):
    name = deploy_echo(srv, max_payload_kb=1)
    event = {"blob": "é" * 3000}        # 6 KB of two-byte characters
    raw = json.dumps(event, ensure_ascii=False).encode()
    r = invoke(srv, name, raw=raw)
    assert r.status_code == 200
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["event_truncated"] and rec["event_bytes"] == len(raw)
    kept = payload(srv, rec["request_id"], "event").content
    assert 1024 - 1 <= len(kept) <= 1024 and raw.startswith(kept)
    kept.decode()                        # cut before a split character
    assert rec["event"] == kept.decode()  # shown as text: no longer JSON
    assert rec["result_truncated"]


def test_text_and_binary_events(srv):
    name = deploy_echo(srv)
    for raw, shown in ((b"plain text, not JSON", "plain text, not JSON"),
                       (b"\xff\xfe\x00binary", {"base64": base64.b64encode(b"\xff\xfe\x00binary")
                                                .decode()})):
        r = invoke(srv, name, raw=raw)
        rid = r.headers["X-Mayfly-Request-Id"]
        rec = get_record(srv, rid)
        assert rec["event"] == shown
        assert payload(srv, rid, "event").content == raw


def test_errors_keeps_only_failed_calls_and_off_keeps_none(srv):
    name = deploy_echo(srv, payloads="errors")
    ok = get_record(srv, invoke_ok(srv, name, {"a": 1}).headers["X-Mayfly-Request-Id"])
    assert ok["event"] is None and ok["result"] is None
    assert ok["event_bytes"] == 0
    r, _ = invoke_error(srv, name, {"fail": 1})
    bad = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert bad["event"] == {"fail": 1} and bad["result"]["errorType"] == "ValueError"
    e = payload(srv, ok["request_id"], "event")
    assert_error(e, 404, "not_found", "kept no event", "record.payloads")

    off = deploy_echo(srv, payloads="off")
    r, _ = invoke_error(srv, off, {"fail": 1})
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["event"] is None and rec["result"] is None


def test_json_too_deep_to_check_is_withheld(srv):
    name = deploy_echo(srv)
    raw = b"[" * 600 + b"]" * 600
    r = invoke(srv, name, raw=raw)
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["event"] is None and rec["event_withheld"] is True
    assert rec["event_bytes"] == len(raw)
    assert_error(payload(srv, rec["request_id"], "event"), 404, "not_found",
                 "could not be checked")


def test_async_calls_keep_their_payloads(srv):
    name = deploy_echo(srv)
    r = invoke(srv, name, {"async": True, "token": "zzz"},
               headers={"X-Mayfly-Invocation-Type": "Event"})
    assert r.status_code == 202
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "success"
    assert rec["event"] == {"async": True, "token": "[redacted]"}
    assert rec["result"] == {"got": rec["event"]}


def test_the_cli_prints_and_writes_the_payloads(srv):
    name = deploy_echo(srv)
    r = invoke_ok(srv, name, {"cli": [1, 2, 3]})
    rid = r.headers["X-Mayfly-Request-Id"]
    get_record(srv, rid)
    p = subprocess.run([MAYFLY_BIN, "invocation", rid, "--event"], capture_output=True,
                       env=dict(os.environ, MAYFLY_URL=srv.url), timeout=60)
    assert p.returncode == 0 and p.stdout == b'{"cli": [1, 2, 3]}', p
    p = subprocess.run([MAYFLY_BIN, "invocation", rid, "--result"], capture_output=True,
                       env=dict(os.environ, MAYFLY_URL=srv.url), timeout=60)
    assert p.returncode == 0 and p.stdout == r.content, p
    p = run_cli(srv.url, "invocation", rid)
    assert p.returncode == 0 and '"event"' in p.stdout and '"cli"' in p.stdout, p
    p = run_cli(srv.url, "invocation", rid, "--event", "--result")
    assert p.returncode == 2 and "one at a time" in p.stderr, p


@pytest.mark.parametrize("record,mention", [
    ({"payloads": "some"}, 'record.payloads: must be "full", "errors" or "off"'),
    ({"max_payload_kb": 0}, "record.max_payload_kb: must be an integer from 1 to 1024"),
    ({"max_payload_kb": 2048}, "record.max_payload_kb"),
    ({"redact": "password"}, "record.redact: must be an array"),
    ({"redact": [""]}, "record.redact[0]"),
    ({"redact": ["x" * 65]}, "record.redact[0]"),
    ({"redact": ["n%d" % i for i in range(33)]}, "at most 32"),
    ({"keep": True}, "record.keep: unknown field"),
    ("full", "record: must be an object"),
])
def test_bad_record_settings_get_400(srv, record, mention):
    name = unique("bad")
    r = requests.put(f"{srv.url}/v1/functions/{name}",
                     json={"runtime": "python3", "handler": "app.handler", "record": record,
                           "code": {"zip_base64": base64.b64encode(b"x").decode()}}, timeout=30)
    assert_error(r, 400, "bad_request", mention)
