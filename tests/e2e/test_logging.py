"""A function's log lines look as they do on Lambda: Python's `logging`
reaches the log through Lambda's root handler ("[LEVEL]\\t<time>Z\\t<request
id>\\t<message>"), Node's console methods carry Lambda's "<time>\\t<request
id>\\t<LEVEL>\\t" prefix, both write one JSON object per record with the
JSON log format (the function's log_format setting or its own
AWS_LAMBDA_LOG_FORMAT), filter by the level, and report a failed call in
the same format. print() and plain stdout stay as written. Each runtime is
tried started for its function and as a pre-started zygote, which learns
its function (and so the log settings) only when it is handed one.

The log is read after a last plain line the function prints: lines of one
call come through one pipe in order, so once that line is in, every line
the function wrote before it is too, and a line not there was never
written."""

import json
import os
import re

import pytest
import requests

from conftest import deploy, get_logs, invoke_ok, unique, wait_for

PY = r'''
import logging, os, sys

logger = logging.getLogger()
logger.warning("init-warning-%s", os.environ["MARK"])

def handler(event, context):
    m = event["m"]
    if "set_level" in event:
        logger.setLevel(event["set_level"])
    logger.info("info-%s", m)
    logger.debug("debug-%s", m)
    logging.getLogger("app.sub").warning("two\nlines-%s", m,
                                         extra={"order": 7, "tags": ["a", "b"]})
    try:
        {}["missing-" + m]
    except KeyError:
        logger.exception("caught-%s", m)
    print("print-" + m)
    if event.get("fail"):
        raise ValueError("failed\n" + m)
    print("end-" + m)
    return {"zygote": b"MAYFLY_ZYGOTE_FD=" in open("/proc/self/environ", "rb").read(),
            "root_level": logger.level}
'''

# A function that never logs: the runtime must not have imported logging
# for it (that would cost every cold start milliseconds).
PY_SILENT = r'''
import sys

def handler(event, context):
    return {"logging": "logging" in sys.modules}
'''

JS = r'''
const fs = require('fs');
console.log('init-log-' + process.env.MARK);

exports.handler = async (event) => {
  const m = event.m;
  console.log('log-%s', m);
  console.info('info-' + m);
  console.warn('warn-' + m);
  console.error('error-' + m);
  console.debug('debug-' + m);
  console.trace('trace-' + m);
  console.log('two\nlines-' + m);
  console.log({ obj: m });
  if (event.fail) {
    const err = new TypeError('failed-' + m);
    err.code = 'E_TEST';
    throw err;
  }
  process.stdout.write('end-' + m + '\n');
  return { zygote: fs.readFileSync('/proc/self/environ').includes('MAYFLY_ZYGOTE_FD=') };
};
'''

ISO_MS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
# Lambda's Python text format: [LEVEL]\t<time>Z\t<request id>\t<message>.
PY_TEXT = re.compile(r"^\[([A-Z]+)\]\t(%s)\t([^\t]*)\t(.*)$" % ISO_MS, re.S)
# Lambda's Node.js text format: <time>\t<request id>\t<LEVEL>\t<message>.
JS_TEXT = re.compile(r"^(%s)\t([^\t]*)\t([A-Z]+)\t(.*)$" % ISO_MS, re.S)
NBSP = "\u00a0"


def pool_ready(srv, kind):
    text = requests.get(f"{srv.url}/metrics", timeout=10).text
    m = re.search(r'^mayfly_sandbox_pool_ready\{kind="%s"\} (\d+)$' % kind, text, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def direct_srv(module_server_factory):
    return module_server_factory("--zygotes", "0")


@pytest.fixture(scope="module")
def zygote_srv(module_server_factory):
    return module_server_factory("--zygotes", "2", "--sandbox-pool", "0")


@pytest.fixture(params=["direct", "zygote"])
def mode(request):
    """(server, mode): runtimes started for their function, or zygotes."""
    name = request.param
    return request.getfixturevalue(f"{name}_srv"), name


def cold_invoke(srv, mode, kind, name, event):
    """The first call of a function, served the way mode says; returns
    (request id, result)."""
    if mode == "zygote":
        wait_for(f"a {kind} zygote", lambda: pool_ready(srv, kind) >= 1, timeout=30)
    r = invoke_ok(srv, name, event)
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    got = r.json()
    assert got["zygote"] == (mode == "zygote"), got
    return r.headers["X-Mayfly-Request-Id"], got


def deploy_py(srv, name, source=PY, **settings):
    settings.setdefault("env", {})
    settings["env"].setdefault("MARK", name)
    return deploy(srv, name, {"app.py": source}, **settings)


def deploy_js(srv, name, **settings):
    settings.setdefault("env", {})
    settings["env"].setdefault("MARK", name)
    return deploy(srv, name, {"index.js": JS}, runtime="nodejs", handler="index.handler",
                  **settings)


def call_lines(srv, name, rid, last, m):
    """The messages of a call that hold its marker m, once the line `last`
    is among them (a cold start's init lines may come with the call's
    request id too)."""
    def fetch():
        lines = get_logs(srv, name, rid)
        return lines if any(x["message"] == last for x in lines) else None
    lines = [x for x in wait_for(f"`{last}` in the log of {rid}", fetch, timeout=60)
             if m in x["message"]]
    assert all(x["stream"] == "stdout" for x in lines), lines
    return [x["message"] for x in lines]


def all_messages(srv, name):
    return [x["message"] for x in get_logs(srv, name)]


def only(messages, needle):
    found = [x for x in messages if needle in x]
    assert len(found) == 1, (needle, messages)
    return found[0]


def py_text(line):
    m = PY_TEXT.match(line)
    assert m, f"not Lambda's Python text format: {line!r}"
    return m.groups()  # level, time, request id, message


# ---------------------------------------------------------------- Python, text


def test_python_logging_reaches_the_log_in_lambdas_text_format(mode):
    srv, how = mode
    name = unique("pytext")
    deploy_py(srv, name)
    m = os.urandom(4).hex()
    rid, got = cold_invoke(srv, how, "python3", name, {"m": m, "set_level": "INFO"})
    assert got["root_level"] == 20
    lines = call_lines(srv, name, rid, f"end-{m}", m)

    level, _, lrid, msg = py_text(only(lines, f"info-{m}"))
    assert (level, lrid, msg) == ("INFO", rid, f"info-{m}")
    assert not [x for x in lines if f"debug-{m}" in x], lines
    # A record's line breaks stay inside its one line, as "\r".
    level, _, lrid, msg = py_text(only(lines, f"lines-{m}"))
    assert (level, lrid, msg) == ("WARNING", rid, f"two\rlines-{m}")
    # logger.exception: the message, then the traceback, in the same line.
    level, _, lrid, msg = py_text(only(lines, f"caught-{m}"))
    assert (level, lrid) == ("ERROR", rid)
    assert msg.startswith(f"caught-{m}\rTraceback (most recent call last):\r"), msg
    assert msg.endswith(f"\rKeyError: 'missing-{m}'"), msg
    assert '  File "/var/task/app.py", line' in msg, msg
    # print() is not logging: as written.
    assert f"print-{m}" in lines

    # At init, there is no request yet: the field is empty, as on Lambda.
    init = only(all_messages(srv, name), f"init-warning-{name}")
    assert py_text(init)[0] == "WARNING" and py_text(init)[2:] == ("", f"init-warning-{name}")

    # The level the code sets is the level that shows.
    m2 = os.urandom(4).hex()
    r = invoke_ok(srv, name, {"m": m2, "set_level": "DEBUG"})
    rid2 = r.headers["X-Mayfly-Request-Id"]
    assert r.headers["X-Mayfly-Cold-Start"] == "0"
    lines = call_lines(srv, name, rid2, f"end-{m2}", m2)
    level, _, lrid, msg = py_text(only(lines, f"debug-{m2}"))
    assert (level, lrid, msg) == ("DEBUG", rid2, f"debug-{m2}")


def test_python_runtime_reports_a_failed_call_in_text(direct_srv):
    srv = direct_srv
    name = unique("pyfail")
    deploy_py(srv, name)
    m = os.urandom(4).hex()
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke",
                      json={"m": m, "fail": True}, timeout=60)
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled", r.text
    rid = r.headers["X-Mayfly-Request-Id"]
    head = f"[ERROR] ValueError: failed\r{m}\rTraceback (most recent call last):\r"
    lines = wait_for("the runtime's error line",
                     lambda: [x["message"] for x in get_logs(srv, name, rid)
                              if x["message"].startswith("[ERROR] ValueError")], timeout=60)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(head), line
    # The traceback's indentation is no-break spaces, as Lambda writes it.
    frames = line[len(head):].split("\r")
    assert frames[0].startswith(NBSP * 2 + 'File "/var/task/app.py", line '), frames
    assert frames[1].startswith(NBSP * 4 + "raise ValueError("), frames


def test_a_function_that_never_logs_does_not_import_logging(direct_srv):
    name = unique("pysilent")
    deploy_py(direct_srv, name, PY_SILENT)
    assert invoke_ok(direct_srv, name).json() == {"logging": False}


# ---------------------------------------------------------------- Python, JSON


def json_lines(lines):
    """The lines that are JSON objects, parsed; print() lines are left out."""
    out = []
    for x in lines:
        if x.startswith("{"):
            out.append(json.loads(x))
    return out


def one_doc(docs, key, value):
    found = [d for d in docs if d.get(key) == value]
    assert len(found) == 1, (key, value, docs)
    return found[0]


def test_python_json_format_from_the_log_format_setting(mode):
    srv, how = mode
    name = unique("pyjson")
    fn = deploy_py(srv, name, log_format="JSON")
    assert (fn["log_format"], fn["log_level"]) == ("JSON", "INFO")
    m = os.urandom(4).hex()
    rid, got = cold_invoke(srv, how, "python3", name, {"m": m})
    # AWS_LAMBDA_LOG_LEVEL (INFO, JSON's default) set the root logger's level.
    assert got["root_level"] == 20
    lines = call_lines(srv, name, rid, f"end-{m}", m)
    docs = json_lines(lines)

    info = one_doc(docs, "message", f"info-{m}")
    assert list(info) == ["timestamp", "level", "message", "logger", "requestId"], info
    assert re.fullmatch(ISO_MS, info["timestamp"]), info
    assert (info["level"], info["logger"], info["requestId"]) == ("INFO", "root", rid)
    assert not [d for d in docs if d["message"] == f"debug-{m}"], docs
    # extra= fields are fields of the object; the message keeps its "\n".
    warn = one_doc(docs, "message", f"two\nlines-{m}")
    assert warn["level"] == "WARNING" and warn["logger"] == "app.sub", warn
    assert (warn["order"], warn["tags"], warn["requestId"]) == (7, ["a", "b"], rid), warn
    # An exception's fields.
    exc = one_doc(docs, "message", f"caught-{m}")
    assert exc["level"] == "ERROR" and exc["errorType"] == "KeyError", exc
    assert exc["errorMessage"] == f"'missing-{m}'", exc
    assert re.fullmatch(r"/var/task/app\.py:handler:\d+", exc["location"]), exc
    assert isinstance(exc["stackTrace"], list) and "/var/task/app.py" in exc["stackTrace"][0]
    # print() stays plain.
    assert f"print-{m}" in lines

    init = one_doc(json_lines(all_messages(srv, name)), "message", f"init-warning-{name}")
    assert init["requestId"] == "" and init["level"] == "WARNING", init

    # The runtime's own report of a failed call is JSON too.
    m2 = os.urandom(4).hex()
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke",
                      json={"m": m2, "fail": True}, timeout=60)
    rid2 = r.headers["X-Mayfly-Request-Id"]
    report = wait_for("the runtime's error report", lambda: [
        d for d in json_lines(x["message"] for x in get_logs(srv, name, rid2))
        if d.get("errorType") == "ValueError"], timeout=60)
    assert len(report) == 1, report
    report = report[0]
    assert list(report) == ["timestamp", "level", "errorMessage", "errorType", "requestId",
                            "stackTrace"], report
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", report["timestamp"]), report
    assert (report["level"], report["errorMessage"], report["requestId"]) == (
        "ERROR", f"failed\n{m2}", rid2), report
    assert 'File "/var/task/app.py"' in report["stackTrace"][0], report


def test_python_json_level_filters_and_follows_updates(direct_srv):
    srv = direct_srv
    name = unique("pylevel")
    deploy_py(srv, name, log_format="JSON", log_level="ERROR")
    m = os.urandom(4).hex()
    r = invoke_ok(srv, name, {"m": m})
    assert r.json()["root_level"] == 40
    docs = json_lines(call_lines(srv, name, r.headers["X-Mayfly-Request-Id"], f"end-{m}", m))
    assert [d["message"] for d in docs] == [f"caught-{m}"], docs

    # TRACE is Lambda's most detailed level; Python's is DEBUG.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"log_level": "TRACE"}, timeout=60)
    assert r.status_code == 200 and r.json()["log_level"] == "TRACE", r.text
    m = os.urandom(4).hex()
    r = invoke_ok(srv, name, {"m": m})
    assert r.json()["root_level"] == 10
    docs = json_lines(call_lines(srv, name, r.headers["X-Mayfly-Request-Id"], f"end-{m}", m))
    assert [d["message"] for d in docs] == [f"info-{m}", f"debug-{m}", f"two\nlines-{m}",
                                            f"caught-{m}"], docs


def test_python_json_format_from_the_functions_env(mode):
    srv, how = mode
    # Lambda does not reserve the variables: the function's env sets them,
    # and wins over the settings.
    name = unique("pyenv")
    deploy_py(srv, name, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    m = os.urandom(4).hex()
    rid, got = cold_invoke(srv, how, "python3", name, {"m": m})
    assert got["root_level"] == 30  # no level given: Python's own default
    docs = json_lines(call_lines(srv, name, rid, f"end-{m}", m))
    assert [d["message"] for d in docs] == [f"two\nlines-{m}", f"caught-{m}"], docs
    assert all(d["requestId"] == rid for d in docs), docs

    name = unique("pyenvlevel")
    deploy_py(srv, name, log_format="JSON", log_level="ERROR",
              env={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    m = os.urandom(4).hex()
    rid, got = cold_invoke(srv, how, "python3", name, {"m": m})
    assert got["root_level"] == 10
    docs = json_lines(call_lines(srv, name, rid, f"end-{m}", m))
    assert f"debug-{m}" in [d["message"] for d in docs], docs

    name = unique("pyenvtext")
    deploy_py(srv, name, log_format="JSON", env={"AWS_LAMBDA_LOG_FORMAT": "Text"})
    m = os.urandom(4).hex()
    rid, got = cold_invoke(srv, how, "python3", name, {"m": m})
    lines = call_lines(srv, name, rid, f"end-{m}", m)
    assert py_text(only(lines, f"info-{m}"))[3] == f"info-{m}"


# ---------------------------------------------------------------- Node.js


def js_text(line):
    m = JS_TEXT.match(line)
    assert m, f"not Lambda's Node.js text format: {line!r}"
    return m.groups()  # time, request id, level, message


def test_node_console_lines_carry_lambdas_prefix(mode):
    srv, how = mode
    name = unique("jstext")
    deploy_js(srv, name)
    m = os.urandom(4).hex()
    rid, _ = cold_invoke(srv, how, "nodejs", name, {"m": m})
    lines = call_lines(srv, name, rid, f"end-{m}", m)
    want = {
        f"log-{m}": "INFO", f"info-{m}": "INFO", f"warn-{m}": "WARN", f"error-{m}": "ERROR",
        f"debug-{m}": "DEBUG", f"trace-{m}": "TRACE", f"two\rlines-{m}": "INFO",
        f"{{ obj: '{m}' }}": "INFO",
    }
    got = {}
    for line in lines:
        if line == f"end-{m}":
            continue  # plain stdout stays as written
        _, lrid, level, msg = js_text(line)
        assert lrid == rid, line
        got[msg] = level
    assert got == want

    # Before the first call the request id is undefined, as on Lambda.
    init = only(all_messages(srv, name), f"init-log-{name}")
    assert js_text(init)[1:] == ("undefined", "INFO", f"init-log-{name}")

    # The runtime's report of a failed call: Lambda's "Invoke Error" line.
    m2 = os.urandom(4).hex()
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke",
                      json={"m": m2, "fail": True}, timeout=60)
    rid2 = r.headers["X-Mayfly-Request-Id"]
    line = wait_for("the Invoke Error line", lambda: [
        x["message"] for x in get_logs(srv, name, rid2) if "Invoke Error" in x["message"]],
        timeout=60)
    assert len(line) == 1, line
    _, lrid, level, msg = js_text(line[0])
    assert (lrid, level) == (rid2, "ERROR") and msg.startswith("Invoke Error \t{"), msg
    report = json.loads(msg[len("Invoke Error \t"):])
    assert list(report) == ["errorType", "errorMessage", "code", "stack"], report
    assert (report["errorType"], report["errorMessage"], report["code"]) == (
        "TypeError", f"failed-{m2}", "E_TEST"), report
    assert report["stack"][0] == f"TypeError: failed-{m2}", report


def test_node_json_format_and_level(mode):
    srv, how = mode
    name = unique("jsjson")
    deploy_js(srv, name, log_format="JSON")
    m = os.urandom(4).hex()
    rid, _ = cold_invoke(srv, how, "nodejs", name, {"m": m})
    lines = call_lines(srv, name, rid, f"end-{m}", m)
    docs = json_lines(lines)
    for d in docs:
        assert list(d)[:3] == ["timestamp", "level", "requestId"], d
        assert re.fullmatch(ISO_MS, d["timestamp"]) and d["requestId"] == rid, d
    # INFO, JSON's default level, drops DEBUG and TRACE; a lone object
    # stays an object.
    assert [(d["level"], d["message"]) for d in docs] == [
        ("INFO", f"log-{m}"), ("INFO", f"info-{m}"), ("WARN", f"warn-{m}"),
        ("ERROR", f"error-{m}"), ("INFO", f"two\nlines-{m}"), ("INFO", {"obj": m})], docs
    init = one_doc(json_lines(all_messages(srv, name)), "message", f"init-log-{name}")
    assert "requestId" not in init, init

    m2 = os.urandom(4).hex()
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke",
                      json={"m": m2, "fail": True}, timeout=60)
    rid2 = r.headers["X-Mayfly-Request-Id"]
    err = wait_for("the runtime's error record", lambda: [
        d for d in json_lines(x["message"] for x in get_logs(srv, name, rid2))
        if d.get("level") == "ERROR" and isinstance(d.get("message"), dict)], timeout=60)
    assert len(err) == 1, err
    assert (err[0]["level"], err[0]["requestId"]) == ("ERROR", rid2), err
    report = err[0]["message"]
    assert (report["errorType"], report["errorMessage"], report["code"]) == (
        "TypeError", f"failed-{m2}", "E_TEST"), report
    assert report["stackTrace"][0] == f"TypeError: failed-{m2}", report

    # WARN drops INFO.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"log_level": "WARN"}, timeout=60)
    assert r.status_code == 200, r.text
    m3 = os.urandom(4).hex()
    r = invoke_ok(srv, name, {"m": m3})
    docs = json_lines(call_lines(srv, name, r.headers["X-Mayfly-Request-Id"], f"end-{m3}", m3))
    assert [d["message"] for d in docs] == [f"warn-{m3}", f"error-{m3}"], docs


# ---------------------------------------------------------------- the setting


def test_cli_deploy_sets_the_log_format_and_level(direct_srv, tmp_path):
    srv = direct_srv
    d = tmp_path / "app"
    d.mkdir()
    (d / "app.py").write_text(PY)
    name = unique("clilog")

    def fn():
        r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    p = srv.cli("deploy", name, d, "--runtime", "python3", "--handler", "app.handler",
                "--env", f"MARK={name}", "--log-format", "JSON", "--log-level", "DEBUG")
    assert p.returncode == 0, p.stderr
    assert (fn()["log_format"], fn()["log_level"]) == ("JSON", "DEBUG")
    m = os.urandom(4).hex()
    r = invoke_ok(srv, name, {"m": m})
    assert r.json()["root_level"] == 10
    docs = json_lines(call_lines(srv, name, r.headers["X-Mayfly-Request-Id"], f"end-{m}", m))
    assert one_doc(docs, "message", f"debug-{m}")["level"] == "DEBUG"

    # `default` puts JSON's default level back; Text drops the level.
    assert srv.cli("deploy", name, d, "--log-level", "default").returncode == 0
    assert fn()["log_level"] == "INFO"
    assert srv.cli("deploy", name, d, "--log-format", "Text").returncode == 0
    assert (fn()["log_format"], fn()["log_level"]) == ("Text", None)

    # Bad values are the server's 400, naming the field; nothing changes.
    p = srv.cli("deploy", name, d, "--log-format", "xml")
    assert p.returncode == 1 and "HTTP 400" in p.stderr, p
    assert 'log_format: must be "Text" or "JSON"' in p.stderr, p.stderr
    p = srv.cli("deploy", name, d, "--log-level", "DEBUG")
    assert p.returncode == 1 and 'log_level: applies only with log_format "JSON"' in p.stderr, p
    p = srv.cli("deploy", name, d, "--log-format", "JSON", "--log-level", "LOUD")
    assert p.returncode == 1 and "log_level: must be null or one of TRACE, DEBUG" in p.stderr, p
    assert (fn()["log_format"], fn()["log_level"]) == ("Text", None)

    p = srv.cli("deploy", "--help")
    assert p.returncode == 0 and "--log-format" in p.stdout and "--log-level" in p.stdout


def test_v1_log_settings_refuse_bad_values(direct_srv):
    srv = direct_srv
    name = unique("badlog")
    deploy_py(srv, name)
    cases = [
        ({"log_format": "XML"}, 'log_format: must be "Text" or "JSON"'),
        ({"log_format": None}, 'log_format: must be "Text" or "JSON"'),
        ({"log_format": "JSON", "log_level": "LOUD"},
         "log_level: must be null or one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL"),
        ({"log_format": "JSON", "system_log_level": "TRACE"},
         "system_log_level: must be null or one of DEBUG, INFO, WARN"),
        ({"log_level": "DEBUG"}, 'log_level: applies only with log_format "JSON"'),
        ({"system_log_level": "WARN"}, 'system_log_level: applies only with log_format "JSON"'),
    ]
    for body, message in cases:
        r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=30)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["message"] == message, (body, r.text)
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()
    assert (fn["log_format"], fn["log_level"], fn["system_log_level"], fn["version"]) == (
        "Text", None, None, 1)
