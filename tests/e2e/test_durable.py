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
# A key of another tenant (docs/metering.md): it sees none of the above's.
OTHER_ID, OTHER_SECRET = "AKIDDURABLEOTHER", "durable-other-secret"
OTHER = {"Authorization": f"Bearer {OTHER_ID}:{OTHER_SECRET}"}
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

exports.caller = withDurableExecution(async (event, context) => {
    const got = await context.invoke("callee", event.callee, { n: event.n });
    return { got };
});

exports.callee = withDurableExecution(async (event, context) => {
    const v = await context.step("double", async () => { say("double", event); return event.n * 2; });
    return { doubled: v };
});

exports.big = withDurableExecution(async (event, context) => {
    const parts = [];
    for (let i = 0; i < event.steps; i++)
        parts.push(await context.step(`part${i}`, async () => {
            say(`part${i}`, event);
            return String(i).padStart(event.size, "x");
        }));
    await context.wait({ seconds: event.seconds });
    return { count: parts.length, bytes: parts.reduce((a, p) => a + p.length, 0) };
});

exports.slow = withDurableExecution(async (event, context) => {
    await context.step("first", async () => { say("first", event); return 1; });
    await context.step("slow", async () => {
        say("slow", event);
        await new Promise((r) => setTimeout(r, event.ms));
        return 2;
    });
    await context.step("last", async () => { say("last", event); return 3; });
    return "done";
});

// An ordinary function that answers another execution's callback from
// inside, with the Lambda client pointed at its own listener.
exports.answerer = async (event) => {
    const lambda = require("/var/task/node_modules/@aws/durable-execution-sdk-js/node_modules/@aws-sdk/client-lambda");
    const c = new lambda.LambdaClient({});
    await c.send(new lambda.SendDurableExecutionCallbackSuccessCommand({
        CallbackId: event.callbackId, Result: JSON.stringify(event.answer) }));
    return "sent";
};

// Not wrapped by the SDK: drives the checkpoint API by hand with the
// Lambda client the SDK uses, as a misbehaving function could.
exports.reuse = async (event) => {
    const lambda = require("/var/task/node_modules/@aws/durable-execution-sdk-js/node_modules/@aws-sdk/client-lambda");
    const c = new lambda.LambdaClient({});
    const arn = event.DurableExecutionArn, t0 = event.CheckpointToken;
    const upd = [{ Id: "s1", Type: "STEP", Action: "START", Name: "by-hand" }];
    const out = {};
    const err = async (p) => { try { await p; return "accepted"; } catch (e) { return e.name; } };
    const a = await c.send(new lambda.CheckpointDurableExecutionCommand({
        DurableExecutionArn: arn, CheckpointToken: t0, ClientToken: "c-1", Updates: upd }));
    out.rotated = a.CheckpointToken !== t0;
    out.started = a.NewExecutionState.Operations.map((o) => `${o.Name}:${o.Status}`);
    // The same request again (a retry, same ClientToken): the same answer.
    const b = await c.send(new lambda.CheckpointDurableExecutionCommand({
        DurableExecutionArn: arn, CheckpointToken: t0, ClientToken: "c-1", Updates: upd }));
    out.retrySame = b.CheckpointToken === a.CheckpointToken;
    // The spent token with another request: refused.
    out.reused = await err(c.send(new lambda.CheckpointDurableExecutionCommand({
        DurableExecutionArn: arn, CheckpointToken: t0, ClientToken: "c-2", Updates: [] })));
    // Another function's execution: refused.
    const forged = arn.replace(`function:${process.env.AWS_LAMBDA_FUNCTION_NAME}:`, "function:someone-else:");
    out.forged = await err(c.send(new lambda.CheckpointDurableExecutionCommand({
        DurableExecutionArn: forged, CheckpointToken: a.CheckpointToken, Updates: [] })));
    const st = await c.send(new lambda.GetDurableExecutionStateCommand({
        DurableExecutionArn: arn, CheckpointToken: a.CheckpointToken, MaxItems: 1 }));
    out.page = st.Operations.length;
    out.more = !!st.NextMarker;
    return { Status: "SUCCEEDED", Result: JSON.stringify(out) };
};

// Started by a topic's message, a function URL's request or another
// function's call: it says what it was started with.
exports.seen = withDurableExecution(async (event, context) => {
    const tag = event.Records ? event.Records[0].Sns.Message
        : event.rawPath !== undefined ? event.rawQueryString : event.tag;
    const got = await context.step("seen", async () => { say("seen", { tag }); return tag; });
    return { seen: got };
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
    return module_server_factory("--keep-warm", "fixed", "--idle-timeout", "1", env={
        "MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET},{OTHER_ID}:{OTHER_SECRET}:team-z"})


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
    r = requests.get(f"{srv.url}/metrics", headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    total = 0.0
    for line in r.text.splitlines():
        if line.startswith("mayfly_instances{") and f'function="{name}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def sigv4_post(srv, path, body=b"", method="POST", key=(KEY_ID, KEY_SECRET)):
    """A Lambda API call signed as awscli signs it."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = srv.url + path
    req = AWSRequest(method=method, url=url, data=body,
                     headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(*key), "lambda", "us-east-1").add_auth(req)
    return requests.request(method, url, data=body, headers=dict(req.headers), timeout=30)


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
    # Every invocation of the execution links to it from its record.
    def records():
        got = requests.get(f"{srv.url}/v1/functions/{name}/invocations", headers=BEARER,
                           timeout=30).json()["invocations"]
        return got if got else None
    recs = wait_for("the records", records)
    assert {rec.get("trigger") for rec in recs} == {f"durable:{eid}"}, recs
    ex = execution(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"total": 13}
    steps = [(o["name"], o["status"], o["attempts"]) for o in ex["operations"]]
    assert steps == [("one", "SUCCEEDED", 1), ("two", "SUCCEEDED", 1), ("three", "SUCCEEDED", 1)]
    listed = requests.get(f"{srv.url}/v1/durable-executions", params={"function": name},
                          headers=BEARER, timeout=30).json()["executions"]
    assert [e["id"] for e in listed] == [eid]


def test_a_spent_block_budget_holds_an_execution_until_raised(server, code, tmp_path):
    # Each call costs 1.0 exactly (docs/metering.md, "Budgets").
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"request_per_million": 1000000, "gb_second": 0}))
    srv = server("--prices", prices)
    name, spender = unique("dheld"), unique("dspend")
    deploy(srv, name, "threeSteps", code)
    deploy(srv, spender, "answerer", code, durable=None)
    budget = {"tenant": "default", "period": "day", "amount": 1, "action": "block"}
    r = requests.put(f"{srv.url}/v1/budgets/cap", json=budget, timeout=30)
    assert r.status_code == 201, r.text
    invoke(srv, spender, {})
    assert requests.get(f"{srv.url}/v1/budgets/cap", timeout=30).json()["blocking"] is True
    tag = unique("t")
    eid = start_async(srv, name, {"x": 4, "tag": tag})["execution_id"]
    # It waits, tried again now and then, failing nothing and running no step.
    wait_for("the execution to be held twice", lambda: srv.stderr().count(
        f"execution {eid} waits") >= 2, timeout=120)
    ex = execution(srv, eid)
    assert ex["status"] == "RUNNING" and ex["invocations"] == 0, ex
    assert ran(srv, name, tag) == []
    r = requests.put(f"{srv.url}/v1/budgets/cap", json={**budget, "amount": 100}, timeout=30)
    assert r.status_code == 200, r.text
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"total": 13}, ex
    assert ran(srv, name, tag) == ["one", "two", "three"]


def test_wait_suspends_and_resumes(srv, code):
    name = unique("dwait")
    # The invocation's time is shorter than the wait: the SDK suspends.
    deploy(srv, name, "waiter", code, timeout_s=8)
    tag = unique("t")
    eid = start_async(srv, name, {"seconds": 12, "tag": tag})["execution_id"]
    wait_for("the wait to start", lambda: any(
        o["type"] == "WAIT" and o["status"] == "STARTED"
        for o in execution(srv, eid)["operations"]), timeout=120, interval=0.2)
    assert instances(srv, name) >= 1
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


def test_a_durable_function_of_another_tenant_runs_its_steps(srv, code):
    # Its SDK reaches the API inside its sandbox, whose caller is the
    # function, of the tenant team-z: its executions are that tenant's.
    name = unique("dother")
    body = {"runtime": "nodejs", "handler": "index.threeSteps", "timeout_s": 30,
            "memory_mb": 256, "code": {"zip_base64": code},
            "durable": {"execution_timeout_s": 3600, "retention_days": 1}}
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=OTHER, timeout=120)
    assert r.status_code == 201, r.text
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"x": 4, "tag": unique("t")},
                      headers=OTHER, timeout=180)
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    assert r.json() == {"total": 13}
    arn = r.headers["X-Mayfly-Durable-Execution-Arn"]
    account = requests.get(f"{srv.url}/v1/whoami", headers=OTHER, timeout=30).json()["account_id"]
    assert arn.split(":")[4] == account, arn


def test_another_tenant_finds_no_execution_by_its_id(srv, code):
    name = unique("dtenant")
    deploy(srv, name, "approval", code, timeout_s=5)
    eid = start_async(srv, name, {"tag": unique("t")})["execution_id"]
    callback_id(srv, eid)
    arn = execution(srv, eid)["arn"]
    other = requests.get(f"{srv.url}/v1/whoami", headers=OTHER, timeout=30).json()
    assert other["tenant"] == "team-z"
    # Through /v1, by id: absent, and its stop too.
    r = requests.get(f"{srv.url}/v1/durable-executions/{eid}", headers=OTHER, timeout=30)
    assert r.status_code == 404, r.text
    r = requests.post(f"{srv.url}/v1/durable-executions/{eid}/stop", headers=OTHER, timeout=30)
    assert r.status_code == 404, r.text
    listed = requests.get(f"{srv.url}/v1/durable-executions", headers=OTHER, timeout=30).json()
    assert eid not in [e["id"] for e in listed["executions"]]
    # A name reaching into another tenant is no name.
    r = requests.get(f"{srv.url}/v1/durable-executions", params={"function": f"default~{name}"},
                     headers=OTHER, timeout=30)
    assert r.status_code == 400 and "function" in r.text, r.text
    # Through the Lambda API: the real ARN is another account's, and the
    # same id under the caller's own account and a function of the same
    # name is no execution of its either.
    mine = arn.replace(":000000000000:", f":{other['account_id']}:")
    key = (OTHER_ID, OTHER_SECRET)
    for a in (arn, mine):
        path = "/2025-12-01/durable-executions/" + urllib.parse.quote(a, safe="")
        for method, suffix in (("GET", ""), ("GET", "/history"), ("POST", "/stop")):
            r = sigv4_post(srv, path + suffix, method=method, key=key)
            assert r.status_code == 404, (method, suffix, r.text)
            assert r.json()["__type"] == "ResourceNotFoundException"
    assert execution(srv, eid)["status"] == "RUNNING"
    r = requests.post(f"{srv.url}/v1/durable-executions/{eid}/stop", headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    assert wait_status(srv, eid)["status"] == "STOPPED"


def test_callback_from_another_function(srv, code):
    name, answerer = unique("dwaits"), unique("danswer")
    deploy(srv, name, "approval", code, timeout_s=5)
    # Not durable: its AWS SDK finds the API on its listener all the same.
    deploy(srv, answerer, "answerer", code, durable=None)
    eid = start_async(srv, name, {"tag": unique("t")})["execution_id"]
    cb = callback_id(srv, eid)
    r = invoke(srv, answerer, {"callbackId": cb, "answer": "from a function"})
    assert r.status_code == 200 and r.json() == "sent", r.text
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"approved": "from a function"}, ex


def test_sdk_endpoint_in_every_function(srv):
    """Every function's AWS SDKs find the Lambda API on its listener, unless
    its env says otherwise (to reach AWS itself through its egress)."""
    src = ("import os\n"
           "def handler(event, context):\n"
           "    return {k: os.environ.get(k) for k in ('AWS_ENDPOINT_URL_LAMBDA',"
           " 'AWS_ACCESS_KEY_ID')}\n")
    body = {"runtime": "python3", "handler": "app.handler",
            "code": {"zip_base64": b64(make_zip({"app.py": src}))}}
    name = unique("denv")
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=BEARER, timeout=60)
    assert r.status_code == 201, r.text
    got = invoke(srv, name, {}).json()
    assert got["AWS_ENDPOINT_URL_LAMBDA"] == "http://127.0.0.1:9001" and got["AWS_ACCESS_KEY_ID"]
    own = dict(body, env={"AWS_ENDPOINT_URL_LAMBDA": "https://lambda.eu-west-1.amazonaws.com",
                          "AWS_ACCESS_KEY_ID": "AKIAOWN", "AWS_SECRET_ACCESS_KEY": "s"})
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=own, headers=BEARER, timeout=60)
    assert r.status_code == 200, r.text
    got = invoke(srv, name, {}).json()
    assert got == {"AWS_ENDPOINT_URL_LAMBDA": "https://lambda.eu-west-1.amazonaws.com",
                   "AWS_ACCESS_KEY_ID": "AKIAOWN"}, got


def test_deleting_the_function_takes_its_executions(srv, code):
    name = unique("ddel")
    deploy(srv, name, "approval", code, timeout_s=5)
    eid = start_async(srv, name, {"tag": unique("t")})["execution_id"]
    cb = callback_id(srv, eid)
    r = requests.delete(f"{srv.url}/v1/functions/{name}", headers=BEARER, timeout=30)
    assert r.status_code == 204, r.text
    wait_for("the execution to go", lambda: requests.get(
        f"{srv.url}/v1/durable-executions/{eid}", headers=BEARER, timeout=30).status_code == 404)
    r = requests.post(f"{srv.url}/v1/durable-execution-callbacks/{cb}/succeed", data=b'"x"',
                      headers=BEARER, timeout=30)
    assert r.status_code == 404, r.text


def test_execution_timeout(srv, code):
    name = unique("dtimeout")
    deploy(srv, name, "approval", code, timeout_s=5,
           durable={"execution_timeout_s": 3})
    eid = start_async(srv, name, {"tag": unique("t")})["execution_id"]
    ex = wait_status(srv, eid)
    assert ex["status"] == "TIMED_OUT", ex
    assert ex["error"]["ErrorType"] == "ExecutionTimedOut", ex


def test_heartbeats_keep_a_callback_waiting(srv, code):
    name = unique("dbeat")
    deploy(srv, name, "approval", code, timeout_s=5)
    tag = unique("t")
    eid = start_async(srv, name, {"tag": tag, "heartbeat": 4})["execution_id"]
    cb = callback_id(srv, eid)
    url = f"{srv.url}/2025-12-01/durable-execution-callbacks/{cb}"
    # Heartbeats for longer than the heartbeat timeout keep it waiting.
    started = time.monotonic()
    while time.monotonic() - started < 8:
        r = sigv4_post(srv, f"/2025-12-01/durable-execution-callbacks/{cb}/heartbeat")
        assert r.status_code == 200, r.text
        assert execution(srv, eid)["status"] == "RUNNING"
        time.sleep(0.5)
    r = sigv4_post(srv, f"/2025-12-01/durable-execution-callbacks/{cb}/succeed", b'"beat"')
    assert r.status_code == 200, (url, r.text)
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"approved": "beat"}, ex


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
    stopped = requests.get(f"{srv.url}/v1/durable-executions",
                           params={"function": name, "status": "stopped"}, headers=BEARER,
                           timeout=30).json()["executions"]
    assert [e["id"] for e in stopped] == [eid]
    running = requests.get(f"{srv.url}/v1/durable-executions",
                           params={"function": name, "status": "RUNNING"}, headers=BEARER,
                           timeout=30).json()["executions"]
    assert running == []
    p = run_cli(srv.url, "executions", name, env=env)
    assert p.returncode == 0 and eid in p.stdout and "STOPPED" in p.stdout, p.stdout
    p = run_cli(srv.url, "execution", eid, env=env)
    assert p.returncode == 0 and "approval" in p.stdout, p.stdout


def test_input_bounds(srv, code):
    name = unique("dbound")
    deploy(srv, name, "threeSteps", code)
    big = {"x": 1, "pad": "p" * (300 << 10)}
    r = invoke(srv, name, big, headers={"X-Mayfly-Invocation-Type": "Event"})
    assert r.status_code == 413 and "input" in r.text, r.text
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", data=b"not json",
                      headers=BEARER, timeout=60)
    assert r.status_code == 400 and "JSON" in r.text, r.text


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


def test_chained_invoke(srv, code):
    callee, caller = unique("dcallee"), unique("dcaller")
    deploy(srv, callee, "callee", code)
    deploy(srv, caller, "caller", code)
    r = invoke(srv, caller, {"callee": callee, "n": 21, "tag": "c"})
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    assert r.json() == {"got": {"doubled": 42}}
    eid = r.headers["X-Mayfly-Durable-Execution-Arn"].rsplit("/", 1)[1]
    ops = execution(srv, eid)["operations"]
    assert [(o["type"], o["status"]) for o in ops] == [("CHAINED_INVOKE", "SUCCEEDED")]
    callee_execs = requests.get(f"{srv.url}/v1/durable-executions", params={"function": callee},
                                headers=BEARER, timeout=30).json()["executions"]
    assert len(callee_execs) == 1 and callee_execs[0]["status"] == "SUCCEEDED"
    assert callee_execs[0]["parent_execution"] == eid
    # A callee that is not durable fails the chained invoke, and so the caller.
    plain = unique("dplain")
    deploy(srv, plain, "callee", code, durable=None)
    r = invoke(srv, caller, {"callee": plain, "n": 1, "tag": "c"})
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled", r.text
    eid = r.headers["X-Mayfly-Durable-Execution-Arn"].rsplit("/", 1)[1]
    ops = execution(srv, eid)["operations"]
    assert [(o["type"], o["status"]) for o in ops] == [("CHAINED_INVOKE", "FAILED")], ops


def test_history_paged_past_one_payload(srv, code):
    name = unique("dbig")
    # About 1.5 MiB of step results: the resuming invocation's event carries
    # the first MiB and the SDK pages the rest with GetDurableExecutionState.
    deploy(srv, name, "big", code, timeout_s=15)
    tag = unique("t")
    eid = start_async(srv, name, {"steps": 24, "size": 64 << 10, "seconds": 18,
                                  "tag": tag})["execution_id"]
    ex = wait_status(srv, eid, timeout=240)
    assert ex["status"] == "SUCCEEDED", ex
    assert ex["result"] == {"count": 24, "bytes": 24 * (64 << 10)}
    assert ex["invocations"] >= 2
    runs = ran(srv, name, tag)
    assert sorted(runs) == sorted(f"part{i}" for i in range(24)), runs


def test_lambda_client_shapes(srv, code, tmp_path):
    """AWS's own Lambda client (the one the SDK uses) creates a function
    with DurableConfig, starts an execution by name and reads it back."""
    name = unique("dlam")
    script = tmp_path / "client.js"
    script.write_text(r"""
const lambda = require(process.env.CLIENT);
const fs = require("fs");
(async () => {
  const c = new lambda.LambdaClient({ endpoint: process.env.URL, region: "us-east-1",
      credentials: { accessKeyId: process.env.KEY, secretAccessKey: process.env.SECRET } });
  const out = {};
  const created = await c.send(new lambda.CreateFunctionCommand({
      FunctionName: process.env.NAME, Runtime: "nodejs20.x", Handler: "index.threeSteps",
      Role: "arn:aws:iam::000000000000:role/x", Timeout: 30, MemorySize: 256,
      Code: { ZipFile: fs.readFileSync(process.env.ZIP) },
      DurableConfig: { ExecutionTimeout: 600, RetentionPeriodInDays: 3 } }));
  out.created = created.DurableConfig;
  out.got = (await c.send(new lambda.GetFunctionCommand({ FunctionName: process.env.NAME })))
      .Configuration.DurableConfig;
  const inv = await c.send(new lambda.InvokeCommand({ FunctionName: process.env.NAME,
      DurableExecutionName: "first-run", Payload: JSON.stringify({ x: 1, tag: "lam" }) }));
  out.payload = JSON.parse(Buffer.from(inv.Payload).toString());
  out.arn = inv.DurableExecutionArn;
  const ex = await c.send(new lambda.GetDurableExecutionCommand({ DurableExecutionArn: inv.DurableExecutionArn }));
  out.status = ex.Status; out.name = ex.DurableExecutionName; out.started = ex.StartTimestamp instanceof Date;
  const list = await c.send(new lambda.ListDurableExecutionsByFunctionCommand({ FunctionName: process.env.NAME }));
  out.listed = list.DurableExecutions.map((e) => e.DurableExecutionName);
  const h = await c.send(new lambda.GetDurableExecutionHistoryCommand({ DurableExecutionArn: inv.DurableExecutionArn }));
  out.events = h.Events.map((e) => e.EventType);
  const again = await c.send(new lambda.InvokeCommand({ FunctionName: process.env.NAME,
      DurableExecutionName: "first-run", Payload: JSON.stringify({ x: 1, tag: "lam" }) }));
  out.againArn = again.DurableExecutionArn;
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
""")
    zpath = tmp_path / "code.zip"
    zpath.write_bytes(__import__("base64").b64decode(code))
    client = JS / SDK / "node_modules" / "@aws-sdk" / "client-lambda"
    import subprocess
    p = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, CLIENT=str(client), URL=srv.url, KEY=KEY_ID,
                                SECRET=KEY_SECRET, NAME=name, ZIP=str(zpath)))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["created"] == {"ExecutionTimeout": 600, "RetentionPeriodInDays": 3}
    assert out["got"] == out["created"]
    assert out["payload"] == {"total": 7}
    assert ARN.match(out["arn"]) and "/durable-execution/first-run/" in out["arn"]
    assert out["status"] == "SUCCEEDED" and out["name"] == "first-run" and out["started"]
    assert out["listed"] == ["first-run"]
    assert "STEPStarted" in out["events"] and "STEPSUCCEEDED" in out["events"]
    assert out["againArn"] == out["arn"]


def succeeded_count(srv):
    r = requests.get(f"{srv.url}/metrics", headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    assert 'mayfly_durable_pending{kind="callback"}' in r.text
    m = re.search(r'^mayfly_durable_executions\{status="SUCCEEDED"\} (\S+)$', r.text, re.M)
    assert m, r.text[-2000:]
    return float(m.group(1))


def test_metrics_count_executions(srv, code):
    # Counted off the loop and shown as last counted, a few seconds old at
    # most while /metrics is read: an execution that ends shows soon after.
    before = succeeded_count(srv)
    name = unique("dmetric")
    deploy(srv, name, "threeSteps", code)
    r = invoke(srv, name, {"x": 1, "tag": unique("t")})
    assert r.status_code == 200 and r.json() == {"total": 7}, r.text
    wait_for("the finished execution to be counted",
             lambda: succeeded_count(srv) >= before + 1, timeout=120, interval=0.5)


def test_kill9_during_step_resumes(server, code):
    srv = server("--keep-warm", "fixed", "--idle-timeout", "1", env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET}"})
    name = unique("dslow")
    deploy(srv, name, "slow", code)
    tag = unique("t")
    eid = start_async(srv, name, {"ms": 3000, "tag": tag})["execution_id"]
    wait_for("the slow step to start", lambda: any(
        o["name"] == "slow" and o["status"] == "STARTED"
        for o in execution(srv, eid)["operations"]), timeout=120, interval=0.1)
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait()
    srv.start()
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == "done", ex
    runs = ran(srv, name, tag)
    # Lines logged before the kill may be lost with it; a run after the
    # restart is not: the completed first step never runs again.
    assert runs.count("first") <= 1 and runs.count("last") == 1, runs
    first = [o for o in ex["operations"] if o["name"] == "first"][0]
    assert first["attempts"] == 1


def test_tokens_inside_the_function(srv, code):
    """The in-function door: a token is good once; a retry with the same
    ClientToken gets the same answer; another function's ARN is refused;
    state pages."""
    name = unique("dreuse")
    deploy(srv, name, "reuse", code)
    r = invoke(srv, name, {"tag": "r"})
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    out = r.json()
    assert out["rotated"] and out["retrySame"], out
    assert out["started"] == ["by-hand:STARTED"], out
    assert out["reused"] == "InvalidParameterValueException", out
    assert out["forged"] == "AccessDeniedException", out
    assert out["page"] == 1 and out["more"], out


def test_sigterm_keeps_a_waiting_execution(server, code):
    srv = server("--keep-warm", "fixed", "--idle-timeout", "1", env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET}"})
    name = unique("dterm")
    deploy(srv, name, "approval", code, timeout_s=5)
    tag = unique("t")
    eid = start_async(srv, name, {"tag": tag})["execution_id"]
    cb = callback_id(srv, eid)
    srv.restart()  # SIGTERM: a clean exit 0
    r = requests.post(f"{srv.url}/v1/durable-execution-callbacks/{cb}/succeed", data=b'"later"',
                      headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    ex = wait_status(srv, eid)
    assert ex["status"] == "SUCCEEDED" and ex["result"] == {"approved": "later"}, ex


def test_kill9_during_wait_resumes(server, code):
    srv = server("--keep-warm", "fixed", "--idle-timeout", "1", env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{KEY_SECRET}"})
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
    runs = ran(srv, name, tag)
    assert runs.count("before") <= 1 and runs.count("after") == 1, runs


def executions_of(srv, name):
    r = requests.get(f"{srv.url}/v1/durable-executions", params={"function": name},
                     headers=BEARER, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["executions"]


def test_a_topic_and_a_url_start_executions(srv, code):
    """Calls that come neither through invoke nor the Lambda API start
    executions too: a topic's delivery (an async event: it ends once its
    execution has started, which it names) and a function URL's request
    (synchronous: it answers the execution's result)."""
    name, topic = unique("dseen"), unique("dtopic")
    deploy(srv, name, "seen", code)
    assert requests.put(f"{srv.url}/v1/topics/{topic}", json={}, headers=BEARER,
                        timeout=30).status_code in (200, 201)
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions", json={"function": name},
                      headers=BEARER, timeout=30)
    assert r.status_code in (200, 201), r.text
    tag = unique("msg")
    r = requests.post(f"{srv.url}/v1/topics/{topic}/publish", json={"message": tag},
                      headers=BEARER, timeout=30)
    assert r.status_code == 202, r.text
    rid = r.json()["deliveries"][0]["request_id"]

    def finished():
        done = [e for e in executions_of(srv, name) if e["status"] == "SUCCEEDED"]
        return done or None
    done = wait_for("the topic's execution", finished, timeout=180, interval=0.2)
    assert len(done) == 1, done
    # Named by the delivery's id: an attempt run again after a crash finds it.
    assert done[0]["name"] == rid, done[0]
    assert done[0]["result"] == {"seen": tag}, done[0]
    assert ran(srv, name, tag) == ["seen"]
    rec = wait_for("the delivery's record", lambda: (lambda x: x if x.get("status") ==
                   "success" else None)(requests.get(f"{srv.url}/v1/invocations/{rid}",
                                                     headers=BEARER, timeout=30).json()),
                   timeout=60, interval=0.2)
    assert rec["trigger"] == f"topic:{topic}", rec
    res = rec["result"] if isinstance(rec["result"], dict) else json.loads(rec["result"])
    assert ARN.match(res["DurableExecutionArn"]), rec

    # A URL waits for its execution and answers its result.
    r = requests.put(f"{srv.url}/v1/functions/{name}/url", json={"auth": "key"}, headers=BEARER,
                     timeout=30)
    assert r.status_code in (200, 201), r.text
    utag = unique("q")
    r = requests.get(f"{srv.url}/url/{name}/?{utag}", headers=BEARER, timeout=180)
    assert r.status_code == 200, r.text
    assert r.json() == {"seen": utag}, r.text
    assert sum(1 for e in executions_of(srv, name) if e["result"] == {"seen": utag}) == 1
