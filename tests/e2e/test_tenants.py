"""Every object belongs to its tenant (docs/metering.md, "Tenants and
roles"): two tenants make functions, stores, volumes, topics, schedules and
URLs of the same names and each sees only its own, as if the other's were
absent, over /v1, the Lambda API (SigV4: the tenant is the account in
ARNs), the API inside a function, and function URLs. An admin sees every
tenant's, and works in one with X-Mayfly-Tenant. Data from before tenants
is the default tenant's."""

import base64
import json

import pytest
import requests

from conftest import assert_error, make_zip, run_cli, unique, wait_for

KEYS = {
    "admin": ("AKIATADMIN000000001", "admin-secret", "default", "admin"),
    "a": ("AKIATA0000000000001", "a-secret", "team-a", "developer"),
    "b": ("AKIATB0000000000001", "b-secret", "team-b", "developer"),
    "a-viewer": ("AKIATAVIEW00000001", "av-secret", "team-a", "viewer"),
    "a-invoker": ("AKIATAINV000000001", "ai-secret", "team-a", "invoker"),
    "default": ("AKIATDEF0000000001", "d-secret", "default", "developer"),
}

# Says which tenant's function answered (its environment) and, given a
# path, calls the API inside its sandbox.
WHO_PY = r"""
import json, os, urllib.request, urllib.error
def handler(event, context):
    if isinstance(event, dict) and event.get("path"):
        method = event.get("method", "POST")
        data = json.dumps(event.get("body", {})).encode() if method != "GET" else None
        req = urllib.request.Request(os.environ["MAYFLY_API"] + event["path"], data=data,
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return {"status": r.status, "body": r.read().decode()}
        except urllib.error.HTTPError as e:
            return {"status": e.code, "body": e.read().decode()}
    return {"owner": os.environ.get("OWNER"), "event": event}
"""


def auth(who):
    key_id, secret, _, _ = KEYS[who]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys"
    path.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    return module_server_factory("--keys", path)


def zip_of(source):
    return make_zip({"app.py": source})


def deploy(srv, who, name, owner, **settings):
    body = {"runtime": "python3", "handler": "app.handler", "timeout_s": 60,
            "env": {"OWNER": owner},
            "code": {"zip_base64": base64.b64encode(zip_of(WHO_PY)).decode()}, **settings}
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=auth(who), timeout=120)
    assert r.status_code in (200, 201), r.text
    return r.json()


def call(srv, who, method, path, **kw):
    return requests.request(method, f"{srv.url}{path}", headers={**auth(who), **kw.pop(
        "headers", {})}, timeout=120, **kw)


def test_two_tenants_functions_of_one_name_stay_apart(srv):
    name = unique("shop")
    fa = deploy(srv, "a", name, "team-a")
    fb = deploy(srv, "b", name, "team-b")
    assert (fa["name"], fa["tenant"]) == (name, "team-a")
    assert (fb["name"], fb["tenant"]) == (name, "team-b")
    ra = call(srv, "a", "POST", f"/v1/functions/{name}/invoke", json={"n": 1})
    rb = call(srv, "b", "POST", f"/v1/functions/{name}/invoke", json={"n": 2})
    assert ra.json() == {"owner": "team-a", "event": {"n": 1}}, ra.text
    assert rb.json() == {"owner": "team-b", "event": {"n": 2}}, rb.text

    # Lists show each its own.
    for who, owner in (("a", "team-a"), ("b", "team-b")):
        fns = call(srv, who, "GET", "/v1/functions").json()["functions"]
        assert [(f["name"], f["tenant"]) for f in fns if f["name"] == name] == [(name, owner)]
        assert {f["tenant"] for f in fns} == {owner}

    # Records: each tenant's call is its own; the other's is absent.
    rid_a, rid_b = ra.headers["X-Mayfly-Request-Id"], rb.headers["X-Mayfly-Request-Id"]

    def record(who, rid):
        r = call(srv, who, "GET", f"/v1/invocations/{rid}")
        return r.json() if r.status_code == 200 else None
    rec = wait_for("team-a's record", lambda: record("a", rid_a))
    assert (rec["function"], rec["tenant"]) == (name, "team-a")
    wait_for("team-b's record", lambda: record("b", rid_b))
    for who, rid in (("a", rid_b), ("b", rid_a)):
        assert_error(call(srv, who, "GET", f"/v1/invocations/{rid}"), 404, "not_found", rid)
        assert_error(call(srv, who, "GET", f"/v1/invocations/{rid}/event"), 404, "not_found")
        assert_error(call(srv, who, "POST", f"/v1/invocations/{rid}/replay"), 404, "not_found")
    listed = call(srv, "a", "GET", "/v1/invocations?limit=1000").json()["invocations"]
    ids = {r["request_id"] for r in listed}
    assert rid_a in ids and rid_b not in ids
    assert {r["tenant"] for r in listed} == {"team-a"}
    listed = call(srv, "b", "GET", f"/v1/invocations?function={name}").json()["invocations"]
    assert [r["request_id"] for r in listed] == [rid_b]

    # Another tenant's function is absent, and its name says so without
    # the tenant.
    only_b = unique("only-b")
    deploy(srv, "b", only_b, "team-b")
    for method, path in (("GET", f"/v1/functions/{only_b}"),
                         ("POST", f"/v1/functions/{only_b}/invoke"),
                         ("DELETE", f"/v1/functions/{only_b}"),
                         ("GET", f"/v1/functions/{only_b}/url")):
        r = call(srv, "a", method, path, **({"json": {}} if method == "POST" else {}))
        assert r.status_code == 404, (method, path, r.text)
        assert "team-b" not in r.text and "~" not in r.text, r.text
    r = call(srv, "b", "GET", f"/v1/functions/{only_b}")
    assert r.status_code == 200 and r.json()["name"] == only_b
    # The same name's usage splits by tenant.
    rows = call(srv, "admin", "GET", "/v1/usage?granularity=hour&group_by=function").json()
    mine = [(row["tenant"], row["requests"]) for row in rows["rows"] if row["function"] == name]
    assert sorted(mine) == [("team-a", 1), ("team-b", 1)], rows
    rows = call(srv, "a", "GET", "/v1/usage?granularity=hour&group_by=tenant").json()
    assert {row["tenant"] for row in rows["rows"]} == {"team-a"}, rows


def test_a_name_holding_the_separator_is_refused(srv):
    r = call(srv, "default", "GET", "/v1/functions/team-b~anything")
    assert_error(r, 400, "bad_request", "not a name")
    r = call(srv, "default", "PUT", "/v1/kv/team-b~store/k", data=b"v")
    assert_error(r, 400, "bad_request", "not a name")


def test_stores_volumes_topics_and_schedules_are_per_tenant(srv):
    store, vol, topic, sched = (unique("st"), unique("vol"), unique("tp"), unique("sc"))
    fn = unique("target")
    deploy(srv, "a", fn, "team-a")
    deploy(srv, "b", fn, "team-b")
    for who, value in (("a", b"from-a"), ("b", b"from-b")):
        assert call(srv, who, "PUT", f"/v1/kv/{store}/k", data=value).status_code in (200, 201)
    assert call(srv, "a", "GET", f"/v1/kv/{store}/k").content == b"from-a"
    assert call(srv, "b", "GET", f"/v1/kv/{store}/k").content == b"from-b"
    stores = call(srv, "a", "GET", "/v1/kv").json()["stores"]
    assert [(s["name"], s["tenant"]) for s in stores if s["name"] == store] == [(store, "team-a")]
    assert {s["tenant"] for s in stores} == {"team-a"}

    for who in ("a", "b"):
        r = call(srv, who, "PUT", f"/v1/volumes/{vol}", json={"size_mb": 8})
        assert r.status_code == 201, r.text
        r = call(srv, who, "PUT", f"/v1/topics/{topic}")
        assert r.status_code == 201, r.text
        r = call(srv, who, "POST", f"/v1/topics/{topic}/subscriptions", json={"function": fn})
        assert r.status_code in (200, 201), r.text
        r = call(srv, who, "PUT", f"/v1/schedules/{sched}",
                 json={"expression": "rate(1 hour)", "function": fn})
        assert r.status_code == 201, r.text
        assert r.json()["function"] == fn and r.json()["tenant"] == f"team-{who}"
    vols = call(srv, "b", "GET", "/v1/volumes").json()["volumes"]
    assert [(v["name"], v["tenant"]) for v in vols] == [(vol, "team-b")]
    topics = call(srv, "a", "GET", "/v1/topics").json()["topics"]
    assert [(t["name"], t["tenant"]) for t in topics] == [(topic, "team-a")]
    got = call(srv, "b", "GET", f"/v1/topics/{topic}").json()
    assert got["arn"].split(":")[4] == call(srv, "b", "GET", "/v1/whoami").json()["account_id"]
    assert [s["function"] for s in got["subscriptions"]] == [fn]
    scheds = call(srv, "a", "GET", "/v1/schedules").json()["schedules"]
    assert [(s["name"], s["tenant"]) for s in scheds] == [(sched, "team-a")]

    # A publish reaches the publishing tenant's subscriber only.
    r = call(srv, "b", "POST", f"/v1/topics/{topic}/publish", json={"message": "hi"})
    assert r.status_code in (200, 202), r.text

    def delivered(who):
        recs = call(srv, who, "GET", f"/v1/functions/{fn}/invocations").json()["invocations"]
        return [x for x in recs if (x["trigger"] or "").startswith("topic:")]
    got = wait_for("team-b's delivery", lambda: delivered("b"))
    assert got[0]["trigger"] == f"topic:{topic}"
    assert delivered("a") == []

    # The admin sees both tenants' objects, and works in one it names.
    everything = call(srv, "admin", "GET", "/v1/volumes").json()["volumes"]
    assert sorted(v["tenant"] for v in everything if v["name"] == vol) == ["team-a", "team-b"]
    r = call(srv, "admin", "GET", f"/v1/kv/{store}/k", headers={"X-Mayfly-Tenant": "team-b"})
    assert r.content == b"from-b"
    r = call(srv, "admin", "GET", f"/v1/kv/{store}/k")
    assert r.status_code == 404, r.text


def test_a_function_reaches_its_own_tenants_objects_only(srv):
    caller, callee, only_b = unique("caller"), unique("callee"), unique("only-b")
    store = unique("in-st")
    deploy(srv, "b", only_b, "team-b")
    deploy(srv, "a", callee, "team-a")
    deploy(srv, "b", callee, "team-b")
    deploy(srv, "a", caller, "team-a",
           permissions=["invoke:*", f"kv:{store}"])
    assert call(srv, "b", "PUT", f"/v1/kv/{store}/k", data=b"secret-b").status_code in (200, 201)

    def inside(path, method="POST", body=None):
        r = call(srv, "a", "POST", f"/v1/functions/{caller}/invoke",
                 json={"path": path, "method": method, "body": body or {}})
        assert r.status_code == 200, r.text
        return r.json()
    out = inside(f"/functions/{callee}/invoke", body={"x": 1})
    assert out["status"] == 200 and json.loads(out["body"])["owner"] == "team-a", out
    out = inside(f"/functions/{only_b}/invoke")
    assert out["status"] == 404 and "team-b" not in out["body"], out
    out = inside(f"/kv/{store}/k", method="GET")
    assert out["status"] == 404, out


def test_the_lambda_api_is_one_account_a_tenant(srv):
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config
    from botocore.exceptions import ClientError

    def client(who):
        key_id, secret, _, _ = KEYS[who]
        return boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                     region_name="us-east-1").client(
            "lambda", endpoint_url=srv.url,
            config=Config(retries={"max_attempts": 1}, read_timeout=120))
    a, b = client("a"), client("b")
    name = unique("lam")
    for c, owner in ((a, "team-a"), (b, "team-b")):
        c.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler",
                          Role="arn:aws:iam::000000000000:role/x", Timeout=60,
                          Environment={"Variables": {"OWNER": owner}},
                          Code={"ZipFile": zip_of(WHO_PY)})
    account_a = call(srv, "a", "GET", "/v1/whoami").json()["account_id"]
    account_b = call(srv, "b", "GET", "/v1/whoami").json()["account_id"]
    assert account_a != account_b and "000000000000" not in (account_a, account_b)
    conf = a.get_function(FunctionName=name)["Configuration"]
    assert conf["FunctionName"] == name
    assert conf["FunctionArn"] == f"arn:aws:lambda:us-east-1:{account_a}:function:{name}"
    out = b.invoke(FunctionName=name, Payload=b'{"k": 1}')
    assert json.loads(out["Payload"].read())["owner"] == "team-b"
    # By ARN: one's own account works, another's is absent.
    out = a.invoke(FunctionName=conf["FunctionArn"], Payload=b"{}")
    assert json.loads(out["Payload"].read())["owner"] == "team-a"
    for arn in (f"arn:aws:lambda:us-east-1:{account_b}:function:{name}",
                f"{account_b}:function:{name}"):
        with pytest.raises(ClientError) as e:
            a.get_function(FunctionName=arn)
        assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    only_b = unique("lam-b")
    b.create_function(FunctionName=only_b, Runtime="python3.12", Handler="app.handler",
                      Role="arn:aws:iam::000000000000:role/x", Code={"ZipFile": zip_of(WHO_PY)})
    with pytest.raises(ClientError) as e:
        a.invoke(FunctionName=only_b, Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert "team-b" not in e.value.response["Error"]["Message"]
    names_a = {f["FunctionName"] for f in a.list_functions()["Functions"]}
    assert name in names_a and only_b not in names_a
    assert {f["FunctionArn"].split(":")[4] for f in a.list_functions()["Functions"]} == {account_a}


def test_urls_carry_the_tenant(srv):
    name = unique("web")
    deploy(srv, "a", name, "team-a")
    deploy(srv, "b", name, "team-b")
    ra = call(srv, "a", "PUT", f"/v1/functions/{name}/url", json={"auth": "none"})
    rb = call(srv, "b", "PUT", f"/v1/functions/{name}/url", json={"auth": "key"})
    assert ra.status_code == 201 and rb.status_code == 201, (ra.text, rb.text)
    assert ra.json()["function"] == name
    assert ra.json()["url"].endswith(f"/url/team-a~{name}/"), ra.json()
    assert rb.json()["url"].endswith(f"/url/team-b~{name}/"), rb.json()
    r = requests.get(f"{srv.url}/url/team-a~{name}/x", timeout=120)
    assert r.status_code == 200 and r.json()["owner"] == "team-a", r.text
    r = requests.get(f"{srv.url}/url/team-b~{name}/x", headers=auth("b"), timeout=120)
    assert r.status_code == 200 and r.json()["owner"] == "team-b", r.text
    # Another tenant's key does not reach a URL whose auth is key.
    r = requests.get(f"{srv.url}/url/team-b~{name}/x", headers=auth("a"), timeout=60)
    assert r.status_code == 404, r.text
    # No function of that name in the default tenant: no URL there.
    r = requests.get(f"{srv.url}/url/{name}/x", timeout=60)
    assert r.status_code == 404, r.text


def test_roles_hold_within_a_tenant(srv):
    name = unique("roled")
    deploy(srv, "a", name, "team-a")
    r = call(srv, "a-viewer", "PUT", f"/v1/functions/{name}", json={"memory_mb": 256})
    assert_error(r, 403, "forbidden", "viewer", "deploy")
    assert call(srv, "a-viewer", "GET", f"/v1/functions/{name}").status_code == 200
    r = call(srv, "a-invoker", "POST", f"/v1/functions/{name}/invoke", json={})
    assert r.status_code == 200 and r.json()["owner"] == "team-a"
    assert_error(call(srv, "a-invoker", "GET", f"/v1/functions/{name}/logs"), 403, "forbidden",
                 "invoker", "read")


def test_the_cli_works_in_its_tenant_and_an_admin_in_any(srv):
    name = unique("cli-t")
    deploy(srv, "b", name, "team-b")
    key_id, secret, _, _ = KEYS["b"]
    out = run_cli(srv.url, "ls", env={"MAYFLY_TOKEN": f"{key_id}:{secret}"})
    assert out.returncode == 0 and name in out.stdout, out.stderr
    key_id, secret, _, _ = KEYS["a"]
    out = run_cli(srv.url, "get", name, env={"MAYFLY_TOKEN": f"{key_id}:{secret}"})
    assert out.returncode != 0 and "team-b" not in out.stderr, out.stderr
    key_id, secret, _, _ = KEYS["admin"]
    out = run_cli(srv.url, "get", name, env={"MAYFLY_TOKEN": f"{key_id}:{secret}",
                                              "MAYFLY_TENANT": "team-b"})
    assert out.returncode == 0 and name in out.stdout, out.stderr


def test_data_from_before_tenants_is_the_default_tenants(server, tmp_path):
    # A server without keys (one tenant, as before tenants) makes a
    # function; started again with keys, the default tenant has it and
    # another tenant does not.
    data = tmp_path / "data"
    first = server(data_dir=data)
    name = unique("old")
    body = {"runtime": "python3", "handler": "app.handler", "env": {"OWNER": "old"},
            "code": {"zip_base64": base64.b64encode(zip_of(WHO_PY)).decode()}}
    assert requests.put(f"{first.url}/v1/functions/{name}", json=body,
                        timeout=120).status_code == 201
    first.stop()
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    again = server("--keys", keys, data_dir=data)
    r = requests.post(f"{again.url}/v1/functions/{name}/invoke", json={},
                      headers=auth("default"), timeout=120)
    assert r.status_code == 200 and r.json()["owner"] == "old", r.text
    r = requests.get(f"{again.url}/v1/functions/{name}", headers=auth("b"), timeout=60)
    assert r.status_code == 404, r.text


def test_two_nodes_on_postgresql_keep_tenants_apart(module_server_factory, pg, tmp_path):
    from conftest import database, psql
    db = database(pg, "mayfly_tenants")
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    a, b = (module_server_factory("--store", db, "--keys", keys, "--sandbox-pool", "0",
                                  "--zygotes", "0") for _ in range(2))
    name = unique("pg-shop")
    deploy(a, "a", name, "team-a")
    deploy(a, "default", name, "default")

    def served_on_b():
        r = call(b, "a", "POST", f"/v1/functions/{name}/invoke", json={"on": "b"})
        return r.json() if r.status_code == 200 and "owner" in r.text else None
    assert wait_for("team-a's function on node b", served_on_b, timeout=120)["owner"] == "team-a"
    r = call(b, "default", "POST", f"/v1/functions/{name}/invoke", json={})
    assert r.status_code == 200 and r.json()["owner"] == "default", r.text
    assert call(b, "b", "GET", f"/v1/functions/{name}").status_code == 404
    # Usage, kept by the database's triggers, splits by tenant.

    def usage():
        rows = call(a, "admin", "GET", "/v1/usage?granularity=hour&group_by=function").json()
        got = sorted((row["tenant"], row["requests"]) for row in rows["rows"]
                     if row["function"] == name)
        return got if got == [("default", 1), ("team-a", 1)] else None
    wait_for("usage of both tenants", usage)
    rows = psql(db, f"SELECT tenant, function FROM usage WHERE function = '{name}' "
                    "GROUP BY tenant, function ORDER BY tenant")
    assert rows.split() == [f"default|{name}", f"team-a|{name}"], rows
