"""Lambda's tenant isolation mode (docs/metering.md, docs/lambda-compat.md):
a function created with "tenancy": "per_tenant" (Lambda's TenancyConfig
PER_TENANT) is called with a tenant id (X-Amz-Tenant-Id), runs each tenant
id on instances of its own, shows the tenant id to the function
(Lambda-Runtime-Aws-Tenant-Id, context.tenant_id / context.tenantId), and
keeps it in records, log lines and usage. Unlike Lambda's, URLs, schedules
and topic subscriptions can start such a function.

The function reports its instance (a module-level id, made once per
instance) and the tenant id it was given, so the tests count instances
without timing anything."""

import json
import os
import subprocess
import threading

import pytest
import requests

from conftest import (REPO, assert_error, database, deploy, deploy_py, get_logs, get_record,
                      invoke, metric, metrics, psql, run_cli, unique, wait_for)

WHO_PY = """
import time, uuid

INSTANCE = str(uuid.uuid4())

def handler(event, context):
    time.sleep((event or {}).get("sleep", 0))
    print("serving", context.tenant_id)
    return {"instance": INSTANCE, "tenant_id": context.tenant_id}
"""

WHO_JS = """
const crypto = require('crypto');
const INSTANCE = crypto.randomUUID();
exports.handler = async (event, context) => ({ instance: INSTANCE, tenant_id: context.tenantId });
"""

T0 = "2026-03-28T12:00:00Z"
JS_CLIENT = REPO / "tests" / "e2e" / "js" / "node_modules" / "@aws-sdk" / "client-lambda"


@pytest.fixture(scope="module")
def srv(module_server_factory):
    # The schedules' clock stands still and moves when told (POST
    # /v1/test/clock), so a schedule fires without waiting a minute.
    return module_server_factory("--test-clock", T0)


def deploy_who(srv, name, **settings):
    settings.setdefault("tenancy", "per_tenant")
    return deploy_py(srv, name, WHO_PY, **settings)


def call(srv, name, tenant, event=None, **headers):
    if tenant is not None:
        headers["X-Amz-Tenant-Id"] = tenant
    r = invoke(srv, name, event or {}, headers=headers)
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, (
        f"HTTP {r.status_code} {r.text}")
    return r


def who(srv, name, tenant, event=None):
    """(instance id, the tenant id the function saw, request id)."""
    r = call(srv, name, tenant, event)
    doc = r.json()
    return doc["instance"], doc["tenant_id"], r.headers["X-Mayfly-Request-Id"]


# ---------------------------------------------------------------- settings


def test_the_function_shows_its_mode_and_the_mode_is_fixed(srv):
    name = unique("tenancy")
    doc = deploy_who(srv, name, max_instances_per_tenant=2)
    assert doc["tenancy"] == "per_tenant" and doc["max_instances_per_tenant"] == 2
    got = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()
    assert got["tenancy"] == "per_tenant" and got["max_instances_per_tenant"] == 2
    # An update may change the cap but not the mode, either way.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"max_instances_per_tenant": 3},
                     timeout=60)
    assert r.status_code == 200 and r.json()["max_instances_per_tenant"] == 3, r.text
    assert_error(requests.put(f"{srv.url}/v1/functions/{name}", json={"tenancy": None},
                              timeout=60), 400, "bad_request", "tenancy", "fixed")
    plain = unique("plain")
    doc = deploy_py(srv, plain, WHO_PY)
    assert "tenancy" not in doc
    assert_error(requests.put(f"{srv.url}/v1/functions/{plain}",
                              json={"tenancy": "per_tenant"}, timeout=60),
                 400, "bad_request", "tenancy", "fixed")


@pytest.mark.parametrize("settings, mentions", [
    ({"tenancy": "PER_TENANT"}, ["tenancy", "per_tenant"]),
    ({"tenancy": True}, ["tenancy"]),
    ({"tenancy": "per_tenant", "max_instances_per_tenant": 0}, ["max_instances_per_tenant"]),
    ({"tenancy": "per_tenant", "max_instances_per_tenant": "2"}, ["max_instances_per_tenant"]),
    ({"max_instances_per_tenant": 2}, ["max_instances_per_tenant", "per_tenant"]),
])
def test_bad_settings_are_refused_naming_the_field(srv, settings, mentions):
    from conftest import b64, make_zip
    body = {"runtime": "python3", "handler": "app.handler",
            "code": {"zip_base64": b64(make_zip({"app.py": WHO_PY}))}, **settings}
    r = requests.put(f"{srv.url}/v1/functions/{unique('bad')}", json=body, timeout=60)
    assert_error(r, 400, "bad_request", *mentions)


# ---------------------------------------------------------------- calls


def test_tenant_ids_never_share_an_instance(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    seen = {"A": set(), "B": set()}
    for tenant in ["A", "B", "A", "B", "A", "B"]:
        instance, saw, _ = who(srv, name, tenant)
        assert saw == tenant
        seen[tenant].add(instance)
    assert seen["A"] and seen["B"] and not seen["A"] & seen["B"], seen
    # A warm instance is reused for its own tenant id.
    assert len(seen["A"]) == 1 and len(seen["B"]) == 1, seen

    # At once, several calls of each: still none shared.
    got = {"A": [], "B": []}
    errors = []

    def run(tenant):
        try:
            instance, saw, _ = who(srv, name, tenant, {"sleep": 0.3})
            assert saw == tenant
            got[tenant].append(instance)
        except AssertionError as e:  # reported below, from the test's thread
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in ["A", "B"] * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got["A"]) == 3 and len(got["B"]) == 3
    assert not set(got["A"]) & set(got["B"]), got


def test_a_full_function_stops_another_tenant_ids_idle_instance_for_room(srv):
    """With room for one instance, tenant ids take turns: the idle instance
    of one is stopped for the other's call, never handed to it."""
    name = unique("tenancy")
    deploy_who(srv, name, max_concurrency=1)
    a1, _, _ = who(srv, name, "A")
    b1, saw, _ = who(srv, name, "B")
    assert saw == "B" and b1 != a1
    a2, saw, _ = who(srv, name, "A")
    assert saw == "A" and a2 not in (a1, b1)


def test_a_call_without_a_tenant_id_is_refused(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    assert_error(invoke(srv, name, {}), 400, "bad_request", "X-Amz-Tenant-Id", name,
                 "tenant isolation")
    assert_error(invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": "Event"}), 400,
                 "bad_request", "X-Amz-Tenant-Id")
    for bad in ["a#b", "x" * 257, "tab\there"]:
        assert_error(invoke(srv, name, {}, headers={"X-Amz-Tenant-Id": bad}), 400,
                     "bad_request", "X-Amz-Tenant-Id", "tenant id")
    # The longest and the odd characters Lambda allows are fine.
    for good in ["t" * 256, "a.b_c:d/e=f+g-h@i j"]:
        _, saw, _ = who(srv, name, good)
        assert saw == good


def test_a_tenant_id_for_a_function_without_the_mode_is_refused(srv):
    name = unique("plain")
    deploy_py(srv, name, WHO_PY)
    for headers in ({}, {"X-Mayfly-Invocation-Type": "Event"}):
        headers["X-Amz-Tenant-Id"] = "A"
        assert_error(invoke(srv, name, {}, headers=headers), 400, "bad_request",
                     "X-Amz-Tenant-Id", "does not have tenant isolation")
    # Without one it runs, its context's tenant_id None.
    instance, saw, _ = who(srv, name, None)
    assert saw is None and instance


def test_records_logs_and_async_events_keep_the_tenant_id(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    _, _, rid = who(srv, name, "blue")
    rec = get_record(srv, rid)
    assert rec["tenant_id"] == "blue"
    def call_log():
        lines = [x["message"] for x in get_logs(srv, name, request_id=rid)]
        return lines if any(m.startswith("REPORT RequestId") for m in lines) else None

    lines = wait_for("the call's log", call_log)
    assert any(m.startswith("START RequestId: ") and m.endswith(" TenantId: blue")
               for m in lines), lines
    assert "serving blue" in lines, lines

    r = invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": "Event",
                                       "X-Amz-Tenant-Id": "green"})
    assert r.status_code == 202, r.text
    rec = get_record(srv, r.json()["request_id"])
    assert rec["status"] == "success" and rec["tenant_id"] == "green", rec
    logs = wait_for("the event's log", lambda: [
        x["message"] for x in get_logs(srv, name, request_id=rec["request_id"])
        if x["message"] == "serving green"])
    assert logs

    # A listing shows and filters by it.
    r = requests.get(f"{srv.url}/v1/invocations", params={"function": name,
                                                          "tenant_id": "green"}, timeout=60)
    assert r.status_code == 200, r.text
    assert [x["tenant_id"] for x in r.json()["invocations"]] == ["green"]
    assert_error(requests.get(f"{srv.url}/v1/invocations", params={"tenant_id": "a#b"},
                              timeout=60), 400, "bad_request", "tenant_id")
    # A plain function's record says null.
    plain = unique("plain")
    deploy_py(srv, plain, WHO_PY)
    assert get_record(srv, call(srv, plain, None).headers["X-Mayfly-Request-Id"])[
        "tenant_id"] is None


def test_a_replay_runs_for_the_records_tenant_id(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    _, _, rid = who(srv, name, "red")
    get_record(srv, rid)
    r = requests.post(f"{srv.url}/v1/invocations/{rid}/replay", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["tenant_id"] == "red"


def test_usage_splits_by_tenant_id(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    ids = [who(srv, name, t)[2] for t in ["A", "A", "A", "B"]]
    for rid in ids:
        get_record(srv, rid)

    def rows():
        r = requests.get(f"{srv.url}/v1/usage", params={"group_by": "tenant_id",
                                                        "function": name}, timeout=60)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["group_by"] == "tenant_id"
        got = {}
        for row in doc["rows"]:
            got[row["tenant_id"]] = got.get(row["tenant_id"], 0) + row["requests"]
        return got if sum(got.values()) == 4 else None

    assert wait_for("usage of the four calls", rows) == {"A": 3, "B": 1}
    assert_error(requests.get(f"{srv.url}/v1/usage", params={"group_by": "tenant_ids"},
                              timeout=60), 400, "bad_request", "group_by")


def test_the_cli_invokes_with_a_tenant_id_and_reports_usage_by_it(srv, tmp_path):
    name = unique("tenancy")
    (tmp_path / "app.py").write_text(WHO_PY)
    p = run_cli(srv.url, "deploy", name, tmp_path, "--runtime", "python3", "--handler",
                "app.handler", "--timeout", "60", "--tenancy", "per_tenant",
                "--max-instances-per-tenant", "2")
    assert p.returncode == 0, p.stderr
    got = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()
    assert got["tenancy"] == "per_tenant" and got["max_instances_per_tenant"] == 2
    p = run_cli(srv.url, "deploy", name, tmp_path, "--tenancy", "per-tenant")
    assert p.returncode == 2 and "--tenancy" in p.stderr, p.stderr
    p = run_cli(srv.url, "invoke", name, "--tenant-id", "cli-tenant")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["tenant_id"] == "cli-tenant"
    p = run_cli(srv.url, "invoke", name)
    assert p.returncode == 1 and "X-Amz-Tenant-Id" in p.stderr, p.stderr
    p = run_cli(srv.url, "invoke", name, "--tenant-id", "a#b")
    assert p.returncode == 2 and "--tenant-id" in p.stderr, p.stderr

    def listed():
        p = run_cli(srv.url, "usage", "--by", "tenant_id", "--function", name, "--format", "csv")
        assert p.returncode == 0, p.stderr
        rows = p.stdout.splitlines()
        return rows if any(r.split(",")[1] == "cli-tenant" for r in rows[1:]) else None

    rows = wait_for("the call in the usage report", listed)
    assert rows[0].split(",")[1] == "TENANT ID"


def test_the_nodejs_context_has_tenantId(srv):
    name = unique("tenancy-js")
    deploy(srv, name, {"index.js": WHO_JS}, runtime="nodejs", handler="index.handler",
           tenancy="per_tenant")
    a, saw, _ = who(srv, name, "A")
    assert saw == "A"
    b, saw, _ = who(srv, name, "B")
    assert saw == "B" and a != b


def test_on_postgresql_records_events_and_usage_keep_the_tenant_id(pg, server):
    """The same on a shared PostgreSQL store, whose usage rows its triggers
    keep: a sync call and an async event of each tenant id."""
    url = database(pg, "mayfly_tenancy")
    srv = server("--store", url)
    name = unique("tenancy-pg")
    deploy_who(srv, name)
    ids = [who(srv, name, t)[2] for t in ["A", "B", "B"]]
    r = invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": "Event",
                                       "X-Amz-Tenant-Id": "A"})
    assert r.status_code == 202, r.text
    ids.append(r.json()["request_id"])
    assert [get_record(srv, rid)["tenant_id"] for rid in ids] == ["A", "B", "B", "A"]

    def rows():
        r = requests.get(f"{srv.url}/v1/usage", params={"group_by": "tenant_id",
                                                        "function": name}, timeout=60)
        assert r.status_code == 200, r.text
        got = {}
        for row in r.json()["rows"]:
            got[row["tenant_id"]] = got.get(row["tenant_id"], 0) + row["requests"]
        return got if sum(got.values()) == 4 else None

    assert wait_for("usage of the four calls", rows) == {"A": 2, "B": 2}
    # The rows hold it too, not only what the report makes of them.
    assert psql(url, f"SELECT tenant_id, sum(requests) FROM usage WHERE function = '{name}'"
                     " GROUP BY tenant_id ORDER BY tenant_id") == "A|2\nB|2"


# ---------------------------------------------------------------- the cap


def test_calls_past_the_cap_per_tenant_id_are_throttled(server):
    # No waiting room: a call that cannot start at once is throttled, as
    # at max_concurrency.
    srv = server("--max-queue", "0")
    name = unique("tenancy")
    deploy_who(srv, name, max_instances_per_tenant=1)
    first = {}
    t = threading.Thread(target=lambda: first.update(r=invoke(
        srv, name, {"sleep": 5}, headers={"X-Amz-Tenant-Id": "A"})))
    t.start()
    try:
        wait_for("A's instance busy", lambda: metric(
            metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
        r = invoke(srv, name, {}, headers={"X-Amz-Tenant-Id": "A"})
        assert_error(r, 429, "throttled", "tenant id", "A")
        assert r.headers.get("Retry-After")
        # Another tenant id has its own cap.
        _, saw, _ = who(srv, name, "B")
        assert saw == "B"
    finally:
        t.join()
    assert first["r"].status_code == 200 and first["r"].json()["tenant_id"] == "A"


# ---------------------------------------------------------------- triggers


def test_a_url_takes_the_tenant_id_from_the_header(srv):
    name = unique("tenancy")
    deploy_who(srv, name)
    r = requests.put(f"{srv.url}/v1/functions/{name}/url", json={"auth": "none"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    r = requests.get(f"{srv.url}/url/{name}/", headers={"X-Amz-Tenant-Id": "A"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["tenant_id"] == "A"
    a = r.json()["instance"]
    r = requests.get(f"{srv.url}/url/{name}/", headers={"X-Amz-Tenant-Id": "B"}, timeout=120)
    assert r.status_code == 200 and r.json()["tenant_id"] == "B" and r.json()["instance"] != a
    assert_error(requests.get(f"{srv.url}/url/{name}/", timeout=120), 400, "bad_request",
                 "X-Amz-Tenant-Id")


def test_a_schedule_names_the_tenant_id_its_fires_run_for(srv):
    name, sched = unique("tenancy"), unique("sched")
    deploy_who(srv, name)
    body = {"expression": "rate(1 minute)", "function": name}
    assert_error(requests.put(f"{srv.url}/v1/schedules/{sched}", json=body, timeout=60), 400,
                 "bad_request", "tenant_id", "tenant isolation")
    assert_error(requests.put(f"{srv.url}/v1/schedules/{sched}",
                              json=dict(body, tenant_id="a#b"), timeout=60),
                 400, "bad_request", "tenant_id")
    r = requests.put(f"{srv.url}/v1/schedules/{sched}", json=dict(body, tenant_id="nightly"),
                     timeout=60)
    assert r.status_code in (200, 201), r.text
    assert r.json()["tenant_id"] == "nightly"
    r = requests.post(f"{srv.url}/v1/test/clock", json={"advance_s": 60}, timeout=60)
    assert r.status_code == 200, r.text

    def fired():
        r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", timeout=60)
        done = [x for x in r.json()["invocations"] if x["status"] == "success"]
        return done or None

    rec = get_record(srv, wait_for("the fire's call", fired)[0]["request_id"])
    assert rec["tenant_id"] == "nightly" and rec["trigger"] == f"schedule:{sched}"
    # A schedule of a function without the mode takes none.
    plain = unique("plain")
    deploy_py(srv, plain, WHO_PY)
    assert_error(requests.put(f"{srv.url}/v1/schedules/{unique('sched')}",
                              json={"expression": "rate(1 minute)", "function": plain,
                                    "tenant_id": "x"}, timeout=60),
                 400, "bad_request", "tenant_id", "does not have tenant isolation")


def test_a_subscription_names_the_tenant_id_its_events_run_for(srv):
    name, topic = unique("tenancy"), unique("topic")
    deploy_who(srv, name)
    assert requests.put(f"{srv.url}/v1/topics/{topic}", timeout=60).status_code in (200, 201)
    subs = f"{srv.url}/v1/topics/{topic}/subscriptions"
    assert_error(requests.post(subs, json={"function": name}, timeout=60), 400, "bad_request",
                 "tenant_id")
    r = requests.post(subs, json={"function": name, "tenant_id": "fanout"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    listed = requests.get(subs, timeout=60).json()["subscriptions"]
    assert [s["tenant_id"] for s in listed] == ["fanout"]
    r = requests.post(f"{srv.url}/v1/topics/{topic}/publish", json={"message": "hi"},
                      timeout=60)
    assert r.status_code == 202, r.text

    def ran():
        r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", timeout=60)
        done = [x for x in r.json()["invocations"] if x["status"] == "success"]
        return done or None

    rec = get_record(srv, wait_for("the message's call", ran)[0]["request_id"])
    assert rec["tenant_id"] == "fanout" and rec["trigger"] == f"topic:{topic}"


# ---------------------------------------------------------------- Lambda's API


def test_lambdas_own_client_creates_and_invokes_with_TenantId(srv, tmp_path):
    """AWS's JavaScript Lambda client: CreateFunction with TenancyConfig,
    GetFunction showing it, Invoke with TenantId (sync and Event), and
    Lambda's InvalidParameterValueException without one."""
    if not (JS_CLIENT / "package.json").exists():
        pytest.fail(f"npm package @aws-sdk/client-lambda is missing from {JS_CLIENT.parent}: "
                    "`make deps` installs it")
    name = unique("tenancy-lam")
    from conftest import make_zip
    zpath = tmp_path / "code.zip"
    zpath.write_bytes(make_zip({"lambda_function.py": WHO_PY}))
    script = tmp_path / "client.js"
    script.write_text(r"""
const lambda = require(process.env.CLIENT);
const fs = require("fs");
(async () => {
  const c = new lambda.LambdaClient({ endpoint: process.env.URL, region: "us-east-1",
      credentials: { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "secret" } });
  const out = {};
  const created = await c.send(new lambda.CreateFunctionCommand({
      FunctionName: process.env.NAME, Runtime: "python3.12",
      Handler: "lambda_function.handler", Role: "arn:aws:iam::000000000000:role/x",
      Timeout: 60, Code: { ZipFile: fs.readFileSync(process.env.ZIP) },
      TenancyConfig: { TenantIsolationMode: "PER_TENANT" } }));
  out.created = created.TenancyConfig;
  out.got = (await c.send(new lambda.GetFunctionCommand({ FunctionName: process.env.NAME })))
      .Configuration.TenancyConfig;
  out.conf = (await c.send(new lambda.GetFunctionConfigurationCommand({
      FunctionName: process.env.NAME }))).TenancyConfig;
  const call = async (tenant) => {
    const inv = await c.send(new lambda.InvokeCommand({ FunctionName: process.env.NAME,
        TenantId: tenant, Payload: "{}" }));
    return JSON.parse(Buffer.from(inv.Payload).toString());
  };
  out.a = await call("A");
  out.b = await call("B");
  const ev = await c.send(new lambda.InvokeCommand({ FunctionName: process.env.NAME,
      TenantId: "C", InvocationType: "Event", Payload: "{}" }));
  out.event = ev.StatusCode;
  for (const [key, tenant] of [["missing", undefined]]) {
    try { await call(tenant); out[key] = "no error"; }
    catch (e) { out[key] = { name: e.name, status: e.$metadata.httpStatusCode,
                            message: e.message }; }
  }
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
""")
    p = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, CLIENT=str(JS_CLIENT), URL=srv.url, NAME=name,
                                ZIP=str(zpath)))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["created"] == {"TenantIsolationMode": "PER_TENANT"}
    assert out["got"] == out["created"] and out["conf"] == out["created"]
    assert out["a"]["tenant_id"] == "A" and out["b"]["tenant_id"] == "B"
    assert out["a"]["instance"] != out["b"]["instance"]
    assert out["event"] == 202
    assert out["missing"]["name"] == "InvalidParameterValueException", out["missing"]
    assert out["missing"]["status"] == 400 and "X-Amz-Tenant-Id" in out["missing"]["message"]

    def event_ran():
        r = requests.get(f"{srv.url}/v1/functions/{name}/invocations",
                         params={"tenant_id": "C"}, timeout=60)
        done = [x for x in r.json()["invocations"] if x["status"] == "success"]
        return done or None

    assert wait_for("the Event call for C", event_ran)[0]["tenant_id"] == "C"
    # The mode is fixed: an update that would drop it is refused, Lambda's way.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"tenancy": None}, timeout=60)
    assert_error(r, 400, "bad_request", "tenancy")


def test_tenant_ids_of_subscriptions_and_schedules_survive_a_restart(server):
    srv = server("--test-clock", T0)
    name, topic, sched = unique("tenancy"), unique("topic"), unique("sched")
    deploy_who(srv, name)
    assert requests.put(f"{srv.url}/v1/topics/{topic}", timeout=60).status_code in (200, 201)
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions",
                      json={"function": name, "tenant_id": "kept"}, timeout=60)
    assert r.status_code in (200, 201), r.text
    r = requests.put(f"{srv.url}/v1/schedules/{sched}",
                     json={"expression": "rate(1 minute)", "function": name,
                           "tenant_id": "kept-too", "enabled": False}, timeout=60)
    assert r.status_code in (200, 201), r.text
    srv.restart()
    subs = requests.get(f"{srv.url}/v1/topics/{topic}/subscriptions", timeout=60).json()
    assert [s["tenant_id"] for s in subs["subscriptions"]] == ["kept"]
    got = requests.get(f"{srv.url}/v1/schedules/{sched}", timeout=60).json()
    assert got["tenant_id"] == "kept-too"
    r = requests.post(f"{srv.url}/v1/topics/{topic}/publish", json={"message": "hi"},
                      timeout=60)
    assert r.status_code == 202, r.text

    def ran():
        r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", timeout=60)
        done = [x for x in r.json()["invocations"] if x["status"] == "success"]
        return done or None

    assert get_record(srv, wait_for("the message's call", ran)[0]["request_id"])[
        "tenant_id"] == "kept"


WAITER_PY = """
import json, os, time, urllib.error, urllib.request

def handler(event, context):
    url = os.environ["MAYFLY_API"] + "/kv/" + event["store"] + "/done"
    if event.get("signal"):
        req = urllib.request.Request(url, data=context.tenant_id.encode(), method="PUT")
        urllib.request.urlopen(req, timeout=60).read()
        return {"signalled": True}
    while True:  # until the signal comes, or the call's own timeout
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                return {"woken_by": r.read().decode()}
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
        time.sleep(0.05)
"""


def test_an_event_of_a_tenant_id_at_its_cap_does_not_hold_up_other_tenant_ids(srv):
    """A's one instance waits for a signal that only B's event gives, and
    A's own event is queued in front of B's: B's must start all the same."""
    name, store = unique("tenancy"), unique("store")
    deploy_py(srv, name, WAITER_PY, tenancy="per_tenant", max_instances_per_tenant=1,
              permissions=[f"kv:{store}"], timeout_s=120)
    first = {}
    t = threading.Thread(target=lambda: first.update(r=invoke(
        srv, name, {"store": store}, headers={"X-Amz-Tenant-Id": "A"}, timeout=300)))
    t.start()
    try:
        wait_for("A's instance busy", lambda: metric(
            metrics(srv), "mayfly_instances", function=name, state="busy") == 1)
        for tenant, event in (("A", {"store": store, "signal": True}),
                              ("B", {"store": store, "signal": True})):
            r = invoke(srv, name, event, headers={"X-Mayfly-Invocation-Type": "Event",
                                                  "X-Amz-Tenant-Id": tenant})
            assert r.status_code == 202, r.text
    finally:
        t.join()
    r = first["r"]
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    assert r.json() == {"woken_by": "B"}


JSON_LOG_PY = """
import logging

def handler(event, context):
    logging.getLogger().warning("hello from %s", context.tenant_id)
    return {}
"""

JSON_LOG_JS = """
exports.handler = async (event, context) => { console.warn('hello from ' + context.tenantId); return {}; };
"""


@pytest.mark.parametrize("runtime", ["python3", "nodejs"])
def test_json_log_lines_and_platform_events_carry_tenantId(srv, runtime):
    name = unique("tenancy-json")
    if runtime == "python3":
        deploy_py(srv, name, JSON_LOG_PY, tenancy="per_tenant", log_format="JSON")
    else:
        deploy(srv, name, {"index.js": JSON_LOG_JS}, runtime="nodejs", handler="index.handler",
               tenancy="per_tenant", log_format="JSON")
    rid = call(srv, name, "teal").headers["X-Mayfly-Request-Id"]

    def docs():
        out = []
        for x in get_logs(srv, name, request_id=rid):
            try:
                out.append(json.loads(x["message"]))
            except ValueError:
                pass
        return out if any(d.get("type") == "platform.report" for d in out) else None

    got = wait_for("the call's JSON log", docs)
    mine = [d for d in got if d.get("message") == "hello from teal"]
    assert mine and all(d["tenantId"] == "teal" for d in mine), got
    start = [d for d in got if d.get("type") == "platform.start"]
    report = [d for d in got if d.get("type") == "platform.report"]
    assert start[0]["record"]["tenantId"] == "teal", start
    assert report[0]["record"]["tenantId"] == "teal", report


FAILING_PY = """
def handler(event, context):
    if event.get("fail"):
        raise RuntimeError("failing for " + context.tenant_id)
    return {"tenant_id": context.tenant_id}
"""


def test_a_dead_letter_keeps_the_tenant_id_and_its_redrive_runs_for_it(srv):
    name = unique("tenancy")
    deploy_py(srv, name, FAILING_PY, tenancy="per_tenant", **{"async": {"max_retries": 0}})
    r = invoke(srv, name, {"fail": True}, headers={"X-Mayfly-Invocation-Type": "Event",
                                                   "X-Amz-Tenant-Id": "violet"})
    assert r.status_code == 202, r.text

    def dead():
        r = requests.get(f"{srv.url}/v1/functions/{name}/dead-letters", timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["dead_letters"] or None

    letter = wait_for("the dead letter", dead)[0]
    assert letter["tenant_id"] == "violet", letter
    r = requests.post(f"{srv.url}/v1/functions/{name}/dead-letters/{letter['id']}/redrive",
                      timeout=60)
    assert r.status_code == 202, r.text
    rec = get_record(srv, r.json()["request_id"])
    assert rec["tenant_id"] == "violet" and rec["error_message"] == "failing for violet", rec
