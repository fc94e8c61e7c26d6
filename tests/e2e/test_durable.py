"""Durable functions (docs/durable.md), driven by AWS's own
@aws/durable-execution-sdk-js packaged into Node functions as its docs
show: the handler checkpoints through the Lambda client it makes itself,
which finds mayfly's API on its instance's listener (AWS_ENDPOINT_URL_LAMBDA)
with no configuration.

Covered: a three-step workflow whose steps each run once; a wait that
suspends (no instance held) and resumes; a step retried by the SDK's retry
strategy, then failing the execution; waitForCallback completed from
outside with SigV4 and through the CLI, and a heartbeat timeout; kill -9
during a wait, after which the execution resumes with no step run twice;
an idempotent start by name; stop; checkpoint abuse (a reused token, another
function's ARN, an oversized payload) each a clear error.

The module's server has access keys, so the Lambda API checks SigV4 and /v1
a bearer token; idle instances stop after a second, so a suspended
execution holds none."""

import json
import os
import re
import signal
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import b64, make_zip, run_cli, unique, wait_for

KEY_ID, KEY_SECRET = "AKIDDURABLETEST", "durable-test-secret"
BEARER = {"Authorization": f"Bearer {KEY_ID}:{KEY_SECRET}"}
JS = Path(__file__).resolve().parent / "js" / "node_modules"
SDK = "@aws/durable-execution-sdk-js"
ARN = re.compile(r"^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+:\$LATEST/"
                 r"durable-execution/[A-Za-z0-9_-]+/[0-9a-f-]{36}$")

HANDLERS = r"""
const { withDurableExecution, createRetryStrategy, JitterStrategy } =
    require("@aws/durable-execution-sdk-js");

const say = (what, event) => console.log(`RAN ${what} ${event.tag}`);

exports.threeSteps = withDurableExecution(async (event, context) => {
    const a = await context.step("one", async () => { say("one", event); return event.x + 1; });
    const b = await context.step("two", async () => { say("two", event); return a * 2; });
    const c = await context.step("three", async () => { say("three", event); return b + 3; });
    return { total: c };
});

exports.waiter = withDurableExecution(async (event, context) => {
    const a = await context.step("before", async () => { say("before", event); return 1; });
    await context.wait({ seconds: event.seconds });
    const b = await context.step("after", async () => { say("after", event); return 2; });
    return { a, b };
});

exports.flaky = withDurableExecution(async (event, context) => {
    return await context.step("flaky", async () => {
        say("flaky", event);
        throw new Error(`flaky step failed for ${event.tag}`);
    }, {
        retryStrategy: createRetryStrategy({
            maxAttempts: 3, initialDelay: { seconds: 1 }, maxDelay: { seconds: 1 },
            jitter: JitterStrategy.NONE,
        }),
    });
});

exports.approval = withDurableExecution(async (event, context) => {
    await context.step("ask", async () => { say("ask", event); return true; });
    const answer = await context.waitForCallback("approval", async (callbackId) => {
        console.log(`CALLBACK ${event.tag} ${callbackId}`);
    }, event.heartbeat ? { heartbeatTimeout: { seconds: event.heartbeat } } : undefined);
    await context.step("done", async () => { say("done", event); return true; });
    return { approved: JSON.parse(answer) };
});
"""


def sdk_files():
    """The SDK and every package it needs, found as Node resolves them
    (a package's own node_modules, then each folder above), as files for
    the function's zip under node_modules/."""
    seen, files = set(), {}
    todo = [JS / SDK]
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for path in pkg.rglob("*"):
            rel = path.relative_to(pkg)
            if path.is_file() and "node_modules" not in rel.parts and path.suffix != ".map":
                files["node_modules/" + str(path.relative_to(JS))] = path.read_bytes()
        meta = json.loads((pkg / "package.json").read_text())
        for dep in meta.get("dependencies", {}):
            here = pkg
            while True:
                cand = here / "node_modules" / dep
                if cand.is_dir():
                    todo.append(cand)
                    break
                if here == JS.parent:
                    raise AssertionError(f"{dep} (needed by {pkg}) is not installed")
                here = here.parent
    return files


@pytest.fixture(scope="module")
def code():
    if not (JS / SDK).is_dir():
        pytest.fail(f"{SDK} is not installed: run make deps")
    files = sdk_files()
    files["index.js"] = HANDLERS
    return b64(make_zip(files))


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("--idle-timeout", "1",
                                 env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET}"})


def deploy(srv, name, handler, code, timeout_s=30, **extra):
    body = {"runtime": "nodejs", "handler": f"index.{handler}", "timeout_s": timeout_s,
            "memory_mb": 256, "code": {"zip_base64": code},
            "durable": {"execution_timeout_s": 3600, "retention_days": 1}}
    body.update(extra)
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=BEARER, timeout=120)
    assert r.status_code in (200, 201), r.text
    return r.json()


def invoke(srv, name, event, headers=None, timeout=180):
    h = dict(BEARER)
    h.update(headers or {})
    return requests.post(f"{srv.url}/v1/functions/{name}/invoke", json=event, headers=h,
                         timeout=timeout)


def start_async(srv, name, event, exec_name=None):
    h = {"X-Mayfly-Invocation-Type": "Event"}
    if exec_name:
        h["X-Mayfly-Durable-Execution-Name"] = exec_name
    r = invoke(srv, name, event, headers=h)
    assert r.status_code == 202, r.text
    return r.json()


def execution(srv, eid):
    r = requests.get(f"{srv.url}/v1/durable-executions/{eid}", headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    try:
        return r.json()
    except ValueError:
        raise AssertionError(f"not JSON: {r.text!r}")


def wait_status(srv, eid, statuses=("SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"),
                timeout=180):
    return wait_for(f"execution {eid} to reach {statuses}",
                    lambda: (lambda e: e if e["status"] in statuses else None)(
                        execution(srv, eid)), timeout=timeout, interval=0.2)


def ran(srv, name, tag):
    """The step names the function logged running for tag, in order."""
    r = requests.get(f"{srv.url}/v1/functions/{name}/logs", headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    out = []
    for line in r.text.splitlines():
        m = re.search(rf"RAN (\w+) {re.escape(tag)}\b", json.loads(line)["message"])
        if m:
            out.append(m.group(1))
    return out


def instances(srv, name):
    r = requests.get(f"{srv.url}/metrics", timeout=30)
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith("mayfly_instances{") and f'function="{name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def sigv4_post(srv, path, body=b""):
    """A Lambda API call signed as awscli signs it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = srv.url + path
    req = AWSRequest(method="POST", url=url, data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY_ID, KEY_SECRET), "lambda", "us-east-1").add_auth(req)
    return requests.post(url, data=body, headers=dict(req.headers), timeout=30)


def callback_id(srv, eid):
    def find():
        for op in execution(srv, eid).get("operations", []):
            if op.get("type") == "CALLBACK" and op.get("status") == "STARTED":
                return op.get("callback_id")
        return None
    return wait_for(f"a callback of {eid}", find, timeout=180, interval=0.2)


# ---------------------------------------------------------------- tests


def test_config_shown_and_checked(srv, code):
    name = unique("dcfg")
    fn = deploy(srv, name, "threeSteps", code)
    assert fn["durable"] == {"execution_timeout_s": 3600, "retention_days": 1}
    r = requests.put(f"{srv.url}/v1/functions/{name}", headers=BEARER, timeout=30,
                     json={"durable": {"retention_days": 91}})
    assert r.status_code == 400 and "durable.retention_days" in r.text, r.text


def test_three_steps_each_run_once(srv, code):
    name = unique("dsteps")
    deploy(srv, name, "threeSteps", code)
    tag = unique("t")
    r = invoke(srv, name, {"x": 4, "tag": tag})
    assert r.status_code == 200, r.text
    assert "X-Mayfly-Function-Error" not in r.headers, r.text
    assert r.json() == {"total": 13}
    assert ARN.match(r.headers["X-Mayfly-Durable-Execution-Arn"])
    assert ran(srv, name, tag) == ["one", "two", "three"]
    eid = r.headers["X-Mayfly-Durable-Execution-Arn"].rsplit("/", 1)[1]
    ex = execution(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"total": 13}
    steps = [(o["name"], o["status"], o["attempts"]) for o in ex["operations"]]
    assert steps == [("one", "SUCCEEDED", 1), ("two", "SUCCEEDED", 1), ("three", "SUCCEEDED", 1)]
    listed = requests.get(f"{srv.url}/v1/durable-executions", params={"function": name},
                          headers=BEARER, timeout=30).json()["executions"]
    assert [e["id"] for e in listed] == [eid]


def test_wait_suspends_and_resumes(srv, code):
    name = unique("dwait")
    # The invocation's time is shorter than the wait: the SDK suspends.
    deploy(srv, name, "waiter", code, timeout_s=6)
    tag = unique("t")
    eid = start_async(srv, name, {"seconds": 10, "tag": tag})["execution_id"]
    wait_for("the wait to start", lambda: any(
        o["type"] == "WAIT" and o["status"] == "STARTED"
        for o in execution(srv, eid)["operations"]), timeout=120, interval=0.2)
    # Suspended: no instance is held while it waits.
    wait_for("its instance to go", lambda: instances(srv, name) == 0, timeout=60, interval=0.2)
    assert execution(srv, eid)["status"] == "RUNNING"
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED", ex
    assert ex["result"] == {"a": 1, "b": 2}
    assert ran(srv, name, tag) == ["before", "after"]
    assert ex["invocations"] >= 2


def test_step_retried_then_fails(srv, code):
    name = unique("dflaky")
    deploy(srv, name, "flaky", code)
    tag = unique("t")
    r = invoke(srv, name, {"tag": tag})
    assert r.status_code == 200, r.text
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled", r.text
    assert f"flaky step failed for {tag}" in r.json()["errorMessage"]
    assert ran(srv, name, tag) == ["flaky", "flaky", "flaky"]
    eid = r.headers["X-Mayfly-Durable-Execution-Arn"].rsplit("/", 1)[1]
    ex = execution(srv, eid)
    assert ex["status"] == "FAILED"
    step = [o for o in ex["operations"] if o["name"] == "flaky"][0]
    assert step["status"] == "FAILED" and step["attempts"] == 3, step


def test_callback_from_outside_sigv4_and_cli(srv, code):
    name = unique("dcb")
    deploy(srv, name, "approval", code, timeout_s=5)
    # SigV4, as awscli sends SendDurableExecutionCallbackSuccess.
    tag = unique("t")
    eid = start_async(srv, name, {"tag": tag})["execution_id"]
    cb = callback_id(srv, eid)
    assert execution(srv, eid)["status"] == "RUNNING"
    r = sigv4_post(srv, f"/2025-12-01/durable-execution-callbacks/{cb}/succeed", b'"yes"')
    assert r.status_code == 200, r.text
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"approved": "yes"}, ex
    assert ran(srv, name, tag) == ["ask", "done"]
    # Unsigned: refused.
    r = requests.post(f"{srv.url}/2025-12-01/durable-execution-callbacks/{cb}/succeed",
                      data=b'"x"', timeout=30)
    assert r.status_code in (401, 403), r.text
    # The CLI.
    tag = unique("t")
    eid = start_async(srv, name, {"tag": tag})["execution_id"]
    cb = callback_id(srv, eid)
    env = {"MAYFLY_TOKEN": f"{KEY_ID}:{KEY_SECRET}"}
    p = run_cli(srv.url, "callback", cb, "succeed", "--data", '"from the cli"', env=env)
    assert p.returncode == 0, p.stderr
    ex = wait_status(srv, eid)
    assert ex["result"] == {"approved": "from the cli"}, ex
    # A second answer to the same callback is refused.
    p = run_cli(srv.url, "callback", cb, "succeed", "--data", '"again"', env=env)
    assert p.returncode == 1 and p.stderr


def test_callback_heartbeat_timeout_fails(srv, code):
    name = unique("dhb")
    deploy(srv, name, "approval", code, timeout_s=5)
    tag = unique("t")
    eid = start_async(srv, name, {"tag": tag, "heartbeat": 2})["execution_id"]
    ex = wait_status(srv, eid)
    assert ex["status"] == "FAILED", ex
    cbs = [o for o in ex["operations"] if o["type"] == "CALLBACK"]
    assert cbs and cbs[0]["status"] == "TIMED_OUT", ex


def test_idempotent_start_by_name_and_stop(srv, code):
    name = unique("dname")
    deploy(srv, name, "approval", code, timeout_s=5)
    tag = unique("t")
    first = start_async(srv, name, {"tag": tag}, exec_name="order-42")
    again = start_async(srv, name, {"tag": tag}, exec_name="order-42")
    assert first["execution_id"] == again["execution_id"]
    assert first["durable_execution_arn"].split("/")[-2] == "order-42"
    r = invoke(srv, name, {"tag": "other"},
               headers={"X-Mayfly-Invocation-Type": "Event",
                        "X-Mayfly-Durable-Execution-Name": "order-42"})
    assert r.status_code == 409, r.text
    eid = first["execution_id"]
    callback_id(srv, eid)
    env = {"MAYFLY_TOKEN": f"{KEY_ID}:{KEY_SECRET}"}
    p = run_cli(srv.url, "execution", eid, "--stop", env=env)
    assert p.returncode == 0, p.stderr
    assert execution(srv, eid)["status"] == "STOPPED"
    p = run_cli(srv.url, "executions", name, env=env)
    assert p.returncode == 0 and eid in p.stdout and "STOPPED" in p.stdout, p.stdout
    p = run_cli(srv.url, "execution", eid, env=env)
    assert p.returncode == 0 and "approval" in p.stdout, p.stdout


def test_checkpoint_abuse(srv, code):
    name, other = unique("dabuse"), unique("dother")
    deploy(srv, name, "approval", code, timeout_s=5)
    deploy(srv, other, "approval", code, timeout_s=5)
    eid = start_async(srv, name, {"tag": unique("t")})["execution_id"]
    callback_id(srv, eid)
    arn = execution(srv, eid)["arn"]
    path = "/2025-12-01/durable-executions/" + urllib.parse.quote(arn, safe="") + "/checkpoint"
    # A token that is not the current one (the suspended invocation's is gone).
    r = sigv4_post(srv, path, json.dumps({"CheckpointToken": "0" * 48, "Updates": []}).encode())
    assert r.status_code == 400 and "checkpoint token" in r.text.lower(), r.text
    # An ARN whose function does not own the execution.
    forged = arn.replace(f"function:{name}:", f"function:{other}:")
    r = sigv4_post(srv, "/2025-12-01/durable-executions/" + urllib.parse.quote(forged, safe="")
                   + "/checkpoint", json.dumps({"CheckpointToken": "x", "Updates": []}).encode())
    assert r.status_code in (400, 403, 404), r.text
    # A payload past the bound.
    big = {"CheckpointToken": "x", "Updates": [{"Id": "a", "Type": "STEP", "Action": "SUCCEED",
                                                "Payload": "x" * (300 << 10)}]}
    r = sigv4_post(srv, path, json.dumps(big).encode())
    assert r.status_code == 413 and "Payload" in r.text, r.text
    # Not an ARN at all.
    r = sigv4_post(srv, "/2025-12-01/durable-executions/nonsense/checkpoint", b"{}")
    assert r.status_code == 400 and "ARN" in r.text, r.text


def test_kill9_during_wait_resumes(server, code):
    srv = server("--idle-timeout", "1", env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET}"})
    name = unique("dcrash")
    deploy(srv, name, "waiter", code, timeout_s=6)
    tag = unique("t")
    eid = start_async(srv, name, {"seconds": 8, "tag": tag})["execution_id"]
    wait_for("the wait to start", lambda: any(
        o["type"] == "WAIT" and o["status"] == "STARTED"
        for o in execution(srv, eid)["operations"]), timeout=120, interval=0.2)
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.start()
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED", ex
    assert ran(srv, name, tag) == ["before", "after"]
