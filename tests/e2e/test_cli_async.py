"""The CLI's side of asynchronous invocation: invoke --async with an
idempotency key, invocations --status, and dead-letters (listing and
--redrive), with the usage errors and exit codes a script relies on.

Tests marked "needs async server" drive the server's queue, retries and
dead letters; the others need no server, or only one that is not there."""

import json
import re

import pytest
import requests

from conftest import deploy_py, run_cli, unique, wait_for

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
NOWHERE = "http://127.0.0.1:1"  # nothing listens there

ECHO_PY = "def handler(event, context):\n    return event\n"
LONG_MESSAGE = "first line\nsecond line " + "x" * 200
FAILING_PY = f"def handler(event, context):\n    raise ValueError({LONG_MESSAGE!r})\n"


def usage_error(p, says):
    assert p.returncode == 2, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    assert says in p.stderr, p.stderr
    assert "usage: mayfly " in p.stderr
    assert p.stdout == ""


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize("args, says", [
    (["f", "--idempotency-key", "k"], "--idempotency-key needs --async"),
    (["f", "--data", "{}", "--idempotency-key", "k"], "--idempotency-key needs --async"),
    (["f", "--async", "--idempotency-key", ""], "1-256 printable ASCII"),
    (["f", "--async", "--idempotency-key", "k" * 257], "1-256 printable ASCII"),
    (["f", "--async", "--idempotency-key", "tab\there"], "1-256 printable ASCII"),
    (["f", "--async", "--idempotency-key", "new\nline"], "1-256 printable ASCII"),
    (["f", "--async", "--idempotency-key", "caf\u00e9"], "1-256 printable ASCII"),
    (["f", "--async", "--idempotency-key"], "requires an argument"),
], ids=["no-async", "no-async-with-data", "empty", "257-chars", "tab", "newline",
        "non-ascii", "no-value"])
def test_invoke_idempotency_key_usage_errors(args, says):
    usage_error(run_cli(NOWHERE, "invoke", *args, timeout=10), says)


@pytest.mark.parametrize("key", ["k", "k" * 256, "order-42 / retry #1 ~!@$%^&*()"],
                         ids=["1-char", "256-chars", "punctuation"])
def test_invoke_accepts_a_valid_idempotency_key(key):
    """A valid key passes the CLI's checks and the call goes out (and fails
    to connect: exit 1, not 2)."""
    p = run_cli(NOWHERE, "invoke", "f", "--async", "--idempotency-key", key, timeout=10)
    assert p.returncode == 1, p
    assert "cannot reach the mayfly server" in p.stderr


@pytest.mark.parametrize("status", ["bogus", "", "SUCCESS", "success,error", "queued "])
def test_invocations_bad_status_exits_2(status):
    p = run_cli(NOWHERE, "invocations", "f", "--status", status, timeout=10)
    usage_error(p, "--status must be one of")
    assert f"`{status}`" in p.stderr


@pytest.mark.parametrize("status",
                         ["success", "error", "timeout", "oom", "throttled", "queued", "running"])
def test_invocations_every_status_is_accepted(status):
    p = run_cli(NOWHERE, "invocations", "f", "--status", status, timeout=10)
    assert p.returncode == 1, p
    assert "cannot reach the mayfly server" in p.stderr


@pytest.mark.parametrize("args, says", [
    ([], "missing NAME"),
    ([""], "NAME is empty"),
    (["--json"], "missing NAME"),
    (["--redrive", "1"], "missing NAME"),
    (["f", "g"], "unexpected argument `g`"),
    (["f", "--limit", "0"], "--limit expects a positive integer"),
    (["f", "--limit", "ten"], "--limit expects a positive integer"),
    (["f", "--redrive", "abc"], "--redrive expects a dead letter's id"),
    (["f", "--redrive", "0"], "--redrive expects a dead letter's id"),
    (["f", "--redrive", "-3"], "--redrive expects a dead letter's id"),
    (["f", "--redrive", "1.5"], "--redrive expects a dead letter's id"),
    (["f", "--redrive", "99999999999999999999999"], "--redrive expects a dead letter's id"),
    (["f", "--redrive", "1", "--json"], "--redrive does not go with"),
    (["f", "--redrive", "1", "--limit", "5"], "--redrive does not go with"),
    (["f", "--bogus"], "unrecognized option"),
    (["f", "--redrive"], "requires an argument"),
], ids=lambda a: (" ".join(a) or "no-args")[:40] if isinstance(a, list) else "")
def test_dead_letters_usage_errors(args, says):
    usage_error(run_cli(NOWHERE, "dead-letters", *args, timeout=10), says)


def test_dead_letters_unreachable_server_exits_1():
    for args in (["f"], ["f", "--json", "--limit", "3"], ["f", "--redrive", "7"]):
        p = run_cli(NOWHERE, "dead-letters", *args, timeout=10)
        assert p.returncode == 1, p
        assert f"mayfly: cannot reach the mayfly server at {NOWHERE}" in p.stderr


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_dead_letters_help(flag):
    p = run_cli(NOWHERE, "dead-letters", flag, timeout=10)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: mayfly dead-letters NAME")
    for opt in ("--limit", "--json", "--redrive", "--help"):
        assert opt in p.stdout
    assert p.stderr == ""


def test_invoke_help_lists_idempotency_key():
    p = run_cli(NOWHERE, "invoke", "--help", timeout=10)
    assert p.returncode == 0
    assert "--idempotency-key K" in p.stdout and "--async" in p.stdout


def test_top_level_help_lists_dead_letters():
    p = run_cli(NOWHERE, "--help", timeout=10)
    assert p.returncode == 0
    assert re.search(r"^  dead-letters +\S", p.stdout, re.M), p.stdout


# ---------------------------------------------------------------- a server


def test_invocations_status_filter_reaches_the_server(shared_server):
    """--status is sent percent-encoded with the function's name; a name the
    server refuses still makes a valid request, answered with HTTP 400."""
    name = unique("cli-status")
    deploy_py(shared_server, name, ECHO_PY)
    r = requests.post(f"{shared_server.url}/v1/functions/{name}/invoke", data=b"{}", timeout=60)
    assert r.status_code == 200, r.text
    rid = r.headers["X-Mayfly-Request-Id"]

    def listed(status):
        p = shared_server.cli("invocations", name, "--status", status, "--json")
        assert p.returncode == 0, p.stderr
        return [x["request_id"] for x in json.loads(p.stdout)["invocations"]]

    assert wait_for("the success record", lambda: listed("success") == [rid])
    assert listed("error") == []

    p = shared_server.cli("invocations", "no such/name", "--status", "error")
    assert p.returncode == 1, p
    assert "HTTP 400" in p.stderr


# ---------------------------------------------------------------- needs async server
#
# Everything below needs the server's asynchronous side: the idempotency
# key, async.max_retries, the --retry-base-ms flag and the dead-letters
# routes.


@pytest.fixture(scope="module")
def async_server(module_server_factory):
    # needs async server: --retry-base-ms scales the retry delays down.
    return module_server_factory("--retry-base-ms", "100")


def dead_letters(srv, name):
    p = srv.cli("dead-letters", name, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)["dead_letters"]


# needs async server
def test_invoke_async_idempotency_key_repeats_the_first_request_id(async_server):
    name = unique("cli-idem")
    deploy_py(async_server, name, ECHO_PY)
    key = "order-" + unique("k")

    first = async_server.cli("invoke", name, "--async", "--idempotency-key", key,
                             "--data", '{"n": 1}')
    assert first.returncode == 0, first.stderr
    rid = first.stdout.strip()
    assert UUID.match(rid), first.stdout

    again = async_server.cli("invoke", name, "--async", "--idempotency-key", key,
                             "--data", '{"n": 2}', "--verbose")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == rid, "a repeated key must print the first request id"
    assert re.search(r"^replay: +yes", again.stderr, re.M), again.stderr

    other = async_server.cli("invoke", name, "--async", "--idempotency-key", key + "-2")
    assert other.returncode == 0, other.stderr
    assert UUID.match(other.stdout.strip()) and other.stdout.strip() != rid

    plain = async_server.cli("invoke", name, "--async", "--verbose")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() not in (rid, other.stdout.strip())
    assert re.search(r"^replay: +no", plain.stderr, re.M), plain.stderr


# needs async server
def test_dead_letters_list_and_redrive(async_server):
    name = unique("cli-dlq")
    deploy_py(async_server, name, FAILING_PY, **{"async": {"max_retries": 0}})

    p = async_server.cli("dead-letters", name)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["ID", "REQUEST_ID", "ATTEMPTS", "ERROR_TYPE", "TIME",
                                "ERROR_MESSAGE"], p.stdout

    p = async_server.cli("invoke", name, "--async", "--data", '{"order": 7}')
    assert p.returncode == 0, p.stderr
    rid = p.stdout.strip()

    entries = wait_for("the dead letter", lambda: dead_letters(async_server, name), timeout=60)
    assert len(entries) == 1, entries
    dl = entries[0]
    assert dl["request_id"] == rid and dl["attempts"] == 1, dl
    assert dl["error_type"] == "ValueError" and dl["error_message"].startswith("first line"), dl

    p = async_server.cli("dead-letters", name)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 2, "a message's newlines must not break the table: " + p.stdout
    row = lines[1].split(None, 5)
    assert row[:4] == [str(dl["id"]), rid, "1", "ValueError"], row
    assert row[4] == dl["time"]
    assert row[5].startswith("first line second line x") and row[5].endswith("..."), row
    assert len(row[5]) <= 60, "the message column is cut short"

    p = async_server.cli("dead-letters", name, "--limit", "1", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["dead_letters"] == entries

    p = async_server.cli("dead-letters", name, "--redrive", dl["id"])
    assert p.returncode == 0, p.stderr
    new_rid = p.stdout.strip()
    assert UUID.match(new_rid) and new_rid != rid, p.stdout

    # The redriven event fails again and, with no retries, dies again.
    wait_for("the redriven event's dead letter",
             lambda: any(d["request_id"] == new_rid for d in dead_letters(async_server, name)),
             timeout=60)


# needs async server
def test_dead_letters_server_errors_exit_1(async_server):
    name = unique("cli-dlq404")
    deploy_py(async_server, name, ECHO_PY)

    p = async_server.cli("dead-letters", name, "--redrive", "987654321")
    assert p.returncode == 1, p
    assert re.search(r"^mayfly: .+ \(not_found, HTTP 404\)$", p.stderr.strip()), p.stderr
    assert p.stdout == ""

    p = async_server.cli("dead-letters", "no-such-function")
    assert p.returncode == 1, p
    assert "HTTP 404" in p.stderr and "no-such-function" in p.stderr
