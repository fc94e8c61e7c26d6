"""Synchronous invoke across the three runtimes: results, cold and warm
starts, function errors (exceptions, timeouts, crashes), code updates, the
shipped examples, and `mayfly invoke` as a script uses it."""

import json
import math
import re
import shlex
import shutil
import threading
import time

import pytest

from conftest import (ECHO_PY, REPO, build_c_bootstrap, deploy, deploy_py, executable,
                      get_logs, get_record, invoke, invoke_error, invoke_ok, metric, metrics,
                      run_cli, unique, wait_for)

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

EVENT = {"name": "mayfly", "n": 3, "nested": {"list": [1, "two", None, True]}, "uni": "é✓"}


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


# ---------------------------------------------------------------- runtimes

PY_CONTEXT = """
def handler(event, context):
    return {
        "echo": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
    }
"""


def test_python_returns_the_result_for_a_json_event(srv):
    name = unique("py")
    deploy_py(srv, name, PY_CONTEXT, timeout_s=30)
    r = invoke_ok(srv, name, EVENT)
    assert r.headers["Content-Type"].startswith("application/json")
    out = r.json()
    assert out["echo"] == EVENT
    assert out["request_id"] == r.headers["X-Mayfly-Request-Id"]
    assert UUID.match(out["request_id"]), out["request_id"]
    assert out["function_name"] == name
    assert int(out["memory"]) == 128
    assert 0 < out["remaining"] <= 30000


NODE_HANDLERS = """
exports.asyncHandler = async (event, context) => ({
  echo: event,
  request_id: context.awsRequestId,
  function_name: context.functionName,
  remaining: context.getRemainingTimeInMillis(),
});

exports.callbackHandler = (event, context, callback) => {
  setTimeout(() => callback(null, { echo: event, style: 'callback' }), 10);
};
"""


def test_node_returns_the_result_for_a_json_event(srv):
    name = unique("node")
    deploy(srv, name, {"index.js": NODE_HANDLERS}, runtime="nodejs",
           handler="index.asyncHandler", timeout_s=30)
    r = invoke_ok(srv, name, EVENT)
    out = r.json()
    assert out["echo"] == EVENT
    assert out["request_id"] == r.headers["X-Mayfly-Request-Id"]
    assert out["function_name"] == name
    assert 0 < out["remaining"] <= 30000

    cb = unique("node-cb")
    deploy(srv, cb, {"index.js": NODE_HANDLERS}, runtime="nodejs",
           handler="index.callbackHandler")
    assert invoke_ok(srv, cb, EVENT).json() == {"echo": EVENT, "style": "callback"}


C_ECHO = r"""
#include <string.h>
#include "mayfly_runtime.h"

/* Wraps the event, byte for byte, in {"echo":EVENT,"request_id":"..."}. */
static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    mayfly_response_set(res, "{\"echo\":", 8);
    mayfly_response_append(res, ev->body, ev->body_len);
    mayfly_response_append(res, ",\"request_id\":", 14);
    mayfly_response_append_json_string(res, ev->request_id, strlen(ev->request_id));
    return mayfly_response_append(res, "}", 1);
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
"""


def test_provided_runtime_runs_the_packages_bootstrap(srv, tmp_path):
    bootstrap = build_c_bootstrap(C_ECHO, tmp_path / "bootstrap")
    name = unique("c")
    deploy(srv, name, {"bootstrap": executable(bootstrap.read_bytes())}, runtime="provided",
           handler=None)
    r = invoke_ok(srv, name, EVENT)
    out = r.json()
    assert out == {"echo": EVENT, "request_id": r.headers["X-Mayfly-Request-Id"]}


def test_the_event_reaches_the_function_byte_for_byte(srv, tmp_path):
    """The platform never parses the event: odd spacing and key order
    arrive as sent (the C runtime hands over the raw bytes)."""
    bootstrap = build_c_bootstrap(C_ECHO, tmp_path / "bootstrap")
    name = unique("c-raw")
    deploy(srv, name, {"bootstrap": executable(bootstrap.read_bytes())}, runtime="provided",
           handler=None)
    raw = b'{ "z" : 1,"a":[ 1 ,2 ] }'
    r = invoke(srv, name, raw=raw)
    assert r.status_code == 200, r.text
    assert r.content.startswith(b'{"echo":' + raw + b',"request_id":'), r.content


def test_lambda_runtime_names_are_accepted_as_aliases(srv):
    name = unique("alias")
    deploy_py(srv, name, ECHO_PY, runtime="python3.12")
    assert invoke_ok(srv, name, {"a": 1}).json() == {"echo": {"a": 1}}


# ---------------------------------------------------------------- cold, warm


def test_first_call_is_cold_and_the_second_warm(srv):
    name = unique("warm")
    deploy_py(srv, name, ECHO_PY)
    first = invoke_ok(srv, name, {"i": 1})
    second = invoke_ok(srv, name, {"i": 2})
    assert first.headers["X-Mayfly-Cold-Start"] == "1"
    assert second.headers["X-Mayfly-Cold-Start"] == "0"
    assert second.json() == {"echo": {"i": 2}}
    for r in (first, second):
        assert UUID.match(r.headers["X-Mayfly-Request-Id"])
        duration = float(r.headers["X-Mayfly-Duration-Ms"])
        billed = int(r.headers["X-Mayfly-Billed-Ms"])
        assert duration > 0
        assert billed >= 1 and billed == max(1, math.ceil(duration)), (duration, billed)
    assert first.headers["X-Mayfly-Request-Id"] != second.headers["X-Mayfly-Request-Id"]


def test_unknown_function_is_404(srv):
    r = invoke(srv, "no-such-function")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


# ---------------------------------------------------------------- errors

PY_RAISES = """
def handler(event, context):
    raise ValueError("bad input: " + str(event.get("what")))
"""


def test_python_exception_is_a_function_error(srv):
    name = unique("raises")
    deploy_py(srv, name, PY_RAISES)
    r, err = invoke_error(srv, name, {"what": "xyzzy"})
    assert err["errorType"] == "ValueError"
    assert err["errorMessage"] == "bad input: xyzzy"
    assert isinstance(err.get("stackTrace"), list)
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "error"
    assert rec["error_type"] == "ValueError"
    assert "xyzzy" in rec["error_message"]
    # The instance survives an exception: the next call is warm.
    r2, _ = invoke_error(srv, name, {"what": 2})
    assert r2.headers["X-Mayfly-Cold-Start"] == "0"


NODE_THROWS = """
exports.handler = async (event) => {
  throw new TypeError('no good: ' + event.what);
};
"""


def test_node_thrown_error_is_a_function_error(srv):
    name = unique("throws")
    deploy(srv, name, {"index.js": NODE_THROWS}, runtime="nodejs", handler="index.handler")
    r, err = invoke_error(srv, name, {"what": "plugh"})
    assert err["errorType"] == "TypeError"
    assert err["errorMessage"] == "no good: plugh"
    assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "error"


PY_SLEEPS = """
import threading
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


def test_timeout_errors_on_time_and_the_next_call_succeeds(srv):
    name = unique("slow")
    deploy_py(srv, name, PY_SLEEPS, timeout_s=1)
    # A warm instance, so only the handler is timed. The deadline counts
    # from acceptance, so on a loaded machine the cold start itself may
    # overrun the second: the instance still starts, and serves a later call.
    wait_for("a warm instance", lambda: "X-Mayfly-Function-Error" not in invoke(
        srv, name, {"sleep": 0}).headers)
    # The handler would sleep 60 times its timeout: an answer that says it
    # timed out came from the server cutting it short, and the server counts
    # the second from acceptance, so the caller waited at least that long.
    t0 = time.monotonic()
    r, err = invoke_error(srv, name, {"sleep": 60})
    waited = time.monotonic() - t0
    assert err["errorMessage"] == "Task timed out after 1.00 seconds"
    assert err["errorType"] == "Sandbox.Timedout"
    assert waited >= 1.0, f"a 1 s timeout answered after {waited:.2f} s"
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "timeout"
    assert rec["error_message"] == "Task timed out after 1.00 seconds"
    # The timed-out instance was killed: the next call gets a fresh one
    # (whose start, on a loaded machine, may itself overrun the second).
    nxt = invoke(srv, name, {"sleep": 0})
    assert nxt.headers["X-Mayfly-Cold-Start"] == "1"
    if "X-Mayfly-Function-Error" in nxt.headers:
        assert nxt.json()["errorType"] == "Sandbox.Timedout", nxt.text
    else:
        assert nxt.json() == {"slept": 0}


PY_CRASHES = """
import ctypes, os

def handler(event, context):
    if event.get("exit") is not None:
        os._exit(event["exit"])
    if event.get("segv"):
        ctypes.string_at(0)
    return "alive"
"""


def test_crash_reports_the_exit_status_and_the_next_call_works(srv):
    name = unique("crash")
    deploy_py(srv, name, PY_CRASHES)
    r, err = invoke_error(srv, name, {"exit": 3})
    assert err["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: exit status 3" in err["errorMessage"], err
    assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "error"
    nxt = invoke_ok(srv, name, {})
    assert nxt.json() == "alive"
    assert nxt.headers["X-Mayfly-Cold-Start"] == "1"


def test_crash_by_a_signal_names_the_signal(srv):
    name = unique("segv")
    deploy_py(srv, name, PY_CRASHES)
    _, err = invoke_error(srv, name, {"segv": True})
    assert err["errorType"] == "Runtime.ExitError"
    assert re.search(r"signal: ", err["errorMessage"]), err
    assert invoke_ok(srv, name, {}).json() == "alive"


# ---------------------------------------------------------------- updates


def version_source(v):
    return f"def handler(event, context):\n    return {{'version': {v}}}\n"


def test_an_update_drains_the_old_instances(srv):
    name = unique("upd")
    deploy_py(srv, name, version_source(1))
    r1 = invoke_ok(srv, name)
    assert r1.json() == {"version": 1}
    fn = deploy_py(srv, name, version_source(2))
    assert fn["version"] == 2
    r2 = invoke_ok(srv, name)
    assert r2.json() == {"version": 2}, "a call after the update ran the old code"
    assert r2.headers["X-Mayfly-Cold-Start"] == "1"
    assert get_record(srv, r1.headers["X-Mayfly-Request-Id"])["version"] == 1
    assert get_record(srv, r2.headers["X-Mayfly-Request-Id"])["version"] == 2


def slow_version_source(v):
    return ("import time\n"
            f"def handler(event, context):\n    time.sleep(event.get('sleep', 0))\n"
            f"    return {{'version': {v}}}\n")


def test_an_update_lets_in_flight_calls_finish_on_the_old_code(srv):
    name = unique("drain")
    deploy_py(srv, name, slow_version_source(1), timeout_s=10)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=invoke(srv, name, {"sleep": 1.5})))
    t.start()
    wait_for("the slow call to run on a v1 instance",
             lambda: metric(metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
    deploy_py(srv, name, slow_version_source(2), timeout_s=10)
    assert invoke_ok(srv, name).json() == {"version": 2}
    t.join(120)
    old = result["r"]
    assert old.status_code == 200 and "X-Mayfly-Function-Error" not in old.headers, old.text
    assert old.json() == {"version": 1}, "the update cut short a call in flight"
    assert get_record(srv, old.headers["X-Mayfly-Request-Id"])["version"] == 1


def test_a_settings_update_reaches_new_calls(srv):
    name = unique("env")
    src = "import os\ndef handler(event, context):\n    return os.environ.get('GREETING')\n"
    deploy_py(srv, name, src, env={"GREETING": "one"})
    assert invoke_ok(srv, name).json() == "one"
    deploy_py(srv, name, src, env={"GREETING": "two"})
    assert invoke_ok(srv, name).json() == "two"


# ---------------------------------------------------------------- the CLI


def test_cli_invoke_prints_the_result(srv, tmp_path):
    name = unique("cli")
    deploy_py(srv, name, ECHO_PY)
    p = srv.cli("invoke", name, "--data", '{"a": 1}')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"echo": {"a": 1}}
    assert p.stdout.endswith("\n")

    p = srv.cli("invoke", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"echo": {}}, "the default event is {}"

    f = tmp_path / "event.json"
    f.write_text('{"from": "file"}')
    p = srv.cli("invoke", name, "--file", f)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"echo": {"from": "file"}}

    p = srv.cli("invoke", name, "-", input='{"from": "stdin"}')
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"echo": {"from": "stdin"}}


def test_cli_invoke_verbose_reports_the_call_on_stderr(srv):
    name = unique("cli-v")
    deploy_py(srv, name, ECHO_PY)
    p = srv.cli("invoke", name, "--verbose")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"echo": {}}, "--verbose must keep stdout the bare result"
    m = re.search(r"request id:\s+(\S+)", p.stderr)
    assert m and UUID.match(m.group(1)), p.stderr
    assert re.search(r"duration:\s+[0-9.]+ ms", p.stderr), p.stderr
    assert re.search(r"billed:\s+\d+ ms", p.stderr), p.stderr
    assert re.search(r"\bcold\b", p.stderr), p.stderr
    p = srv.cli("invoke", name, "-v")
    assert re.search(r"\bwarm\b", p.stderr), p.stderr
    rec = get_record(srv, m.group(1))
    assert rec["function"] == name


def test_cli_invoke_function_error_prints_the_error_and_exits_1(srv):
    name = unique("cli-err")
    deploy_py(srv, name, PY_RAISES)
    p = srv.cli("invoke", name, "--data", '{"what": "frob"}')
    assert p.returncode == 1, p
    err = json.loads(p.stdout)
    assert err["errorType"] == "ValueError" and err["errorMessage"] == "bad input: frob"
    assert "ValueError" in p.stderr and "bad input: frob" in p.stderr


def test_cli_invoke_server_errors_exit_1(srv):
    p = srv.cli("invoke", "no-such-function")
    assert p.returncode == 1
    assert re.search(r"^mayfly: .*no-such-function.* \(not_found, HTTP 404\)$", p.stderr.strip()), \
        p.stderr
    assert p.stdout == ""


def test_cli_invoke_async_prints_a_request_id_or_the_servers_error(srv):
    name = unique("cli-async")
    deploy_py(srv, name, ECHO_PY)
    p = srv.cli("invoke", name, "--async")
    if p.returncode == 0:
        assert UUID.match(p.stdout.strip()), p.stdout
    else:
        assert p.returncode == 1, p
        assert p.stderr.startswith("mayfly: ") and "HTTP" in p.stderr, p.stderr


@pytest.mark.parametrize("args, says", [
    ([], "missing NAME"),
    (["f", "--data", "{}", "--file", "x"], "one way"),
    (["f", "--data", "{}", "-"], "one way"),
    (["f", "g"], "unexpected argument"),
    (["f", "--bogus"], "unrecognized option"),
])
def test_cli_invoke_bad_usage_exits_2(args, says):
    p = run_cli("http://127.0.0.1:1", "invoke", *args, timeout=10)
    assert p.returncode == 2, p
    assert says in p.stderr, p.stderr
    assert "usage: mayfly invoke" in p.stderr


def test_cli_invoke_missing_file_exits_1(tmp_path):
    p = run_cli("http://127.0.0.1:1", "invoke", "f", "--file", tmp_path / "nope.json", timeout=10)
    assert p.returncode == 1
    assert "nope.json" in p.stderr


@pytest.mark.parametrize("cmd", ["invoke", "logs", "invocations", "invocation"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_new_commands_have_help(cmd, flag):
    p = run_cli("http://127.0.0.1:1", cmd, flag, timeout=10)
    assert p.returncode == 0, p.stderr
    assert f"usage: mayfly {cmd}" in p.stdout
    top = run_cli("http://127.0.0.1:1", "--help", timeout=10)
    assert re.search(rf"^\s+{cmd}\s", top.stdout, re.M), top.stdout


# ---------------------------------------------------------------- examples


def example_dir(example, tmp_path):
    """The example's folder, ready to deploy: hello-c needs its bootstrap,
    which `make` builds; when it is missing it is built here."""
    src = REPO / "examples" / example
    assert src.is_dir(), f"examples/{example} is missing"
    if example != "hello-c" or (src / "bootstrap").exists():
        return src
    main = src / "main.c"
    assert main.exists(), "examples/hello-c has neither a bootstrap nor a main.c"
    d = tmp_path / example
    shutil.copytree(src, d)
    build_c_bootstrap(main.read_text(), d / "bootstrap")
    (d / "bootstrap.c").unlink()
    return d


@pytest.mark.parametrize("example", ["hello-python", "hello-node", "hello-c"])
def test_the_examples_deploy_and_answer_through_the_cli(srv, tmp_path, example):
    folder = example_dir(example, tmp_path)
    args = shlex.split((REPO / "examples" / example / "deploy.args").read_text())
    name = unique(example)
    # A timeout no cold start on a loaded machine comes near.
    p = srv.cli("deploy", name, folder, *args, "--timeout", "60")
    assert p.returncode == 0, p.stderr

    p = srv.cli("invoke", name, "--data", '{"name": "Ada"}', "--verbose")
    assert p.returncode == 0, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    out = json.loads(p.stdout)
    assert "hello" in json.dumps(out).lower() and "Ada" in json.dumps(out), out
    rid = re.search(r"request id:\s+(\S+)", p.stderr).group(1)

    rec = get_record(srv, rid)
    assert rec["status"] == "success" and rec["function"] == name
    p = srv.cli("invocation", rid)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["request_id"] == rid

    # What the example prints about the call is in its log.
    wait_for(f"a log line of {rid}", lambda: get_logs(srv, name, rid))
    p = srv.cli("logs", name, "--request", rid)
    assert p.returncode == 0, p.stderr
    assert rid in p.stdout, p.stdout


def test_a_relative_data_dir_still_runs_functions(server, tmp_path):
    """Sandboxes mount code by absolute path whatever the server's cwd."""
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    srv = server(data_dir="relative-data", cwd=workdir)
    assert (workdir / "relative-data" / "mayfly.db").exists()
    deploy_py(srv, "rel", "def handler(event, context):\n    return {'ok': event['n']}\n")
    r = invoke_ok(srv, "rel", {"n": 7})
    assert r.json() == {"ok": 7}


def test_a_large_deploy_does_not_stall_calls(server):
    """A package is parsed, decoded, hashed and unpacked off the event loop
    (on libuv's thread pool), so calls go on being answered meanwhile. The
    server's own CPU clocks say where that work ran, however busy the
    machine is: the loop thread only reads the body off the socket, a small
    part of the CPU the deploy costs; doing the work on the loop would make
    it nearly all of it."""
    import base64
    import io
    import os
    import zipfile

    import requests

    # Nothing else for the server to do meanwhile: no runtimes started ahead.
    srv = server("--sandbox-pool", "0", "--zygotes", "0")
    # A body of 22 MiB to parse, decode and hash, and 144 MiB to unpack.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("app.py", ECHO_PY)
        z.writestr("blob.bin", os.urandom(16 << 20))
        z.writestr("zeros.bin", bytes(128 << 20), compress_type=zipfile.ZIP_DEFLATED)
    body = json.dumps({"runtime": "python3", "handler": "app.handler",
                       "code": {"zip_base64": base64.b64encode(buf.getvalue()).decode()}})

    before = metrics(srv)
    r = requests.put(f"{srv.url}/v1/functions/{unique('big')}", data=body, timeout=300)
    after = metrics(srv)
    assert r.status_code == 201, r.text

    def spent(name):
        return metric(after, name) - metric(before, name)
    loop_cpu = spent("mayfly_event_loop_cpu_seconds_total")
    process_cpu = spent("process_cpu_seconds_total")
    # The loop's iterations meanwhile, by how long each was busy: the
    # longest one is within the first bucket that holds them all.
    deltas = sorted((float(dict(ls)["le"]), v - before.get((n, ls), 0))
                    for (n, ls), v in after.items() if n == "mayfly_event_loop_busy_seconds_bucket")
    iterations = deltas[-1][1]
    longest = next(le for le, d in deltas if d == iterations)
    print(f"deploy: {process_cpu:.3f} s of CPU, {loop_cpu:.3f} s of it on the loop thread; "
          f"{iterations:.0f} loop iterations, the longest busy for at most {longest} s")
    assert process_cpu > 0, (before, after)
    assert loop_cpu < 0.5 * process_cpu, (
        f"the event loop thread used {loop_cpu:.3f} s of the {process_cpu:.3f} s of CPU the "
        "deploy cost: the package was processed on the loop")


def test_a_node_esm_handler_runs(shared_server):
    """The README says nodejs handlers may be ES modules (.mjs)."""
    name = unique("esm")
    deploy(shared_server, name,
           {"index.mjs": "export const handler = async (event) => ({ esm: true, got: event });\n"},
           runtime="nodejs", handler="index.handler")
    assert invoke_ok(shared_server, name, {"n": 1}).json() == {"esm": True, "got": {"n": 1}}
