"""Access keys with a tenant and a role (docs/metering.md, "Tenants and
roles"): the keys file's optional third and fourth columns. A request
beyond its key's role gets 403 naming the role and the action, over /v1,
the Lambda API (SigV4, with boto3) and function URLs; GET /v1/whoami tells
any key who it is; GET /v1/tenants is for admins."""

import io
import subprocess
import zipfile

import pytest
import requests

from conftest import ECHO_PY, MAYFLY_BIN, assert_error, free_port, run_cli, unique, wait_for

KEYS = {
    "admin": ("AKIAADMIN00000000001", "admin-secret", "default", "admin"),
    "developer": ("AKIADEV000000000001", "dev-secret", None, None),
    "invoker": ("AKIAINV000000000001", "inv-secret", "default", "invoker"),
    "viewer": ("AKIAVIEW00000000001", "view-secret", "default", "viewer"),
    "other": ("AKIAOTHER0000000001", "other-secret", "team-b", "developer"),
}


def auth(role):
    key_id, secret, _, _ = KEYS[role]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys"
    lines = ["# id secret [tenant [role]]"]
    for key_id, secret, tenant, role in KEYS.values():
        lines.append(" ".join(x for x in (key_id, secret, tenant, role) if x))
    path.write_text("\n".join(lines) + "\n")
    return module_server_factory("--keys", path)


def zip_of(source):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", source)
    return buf.getvalue()


def deploy_as(srv, role, name):
    import base64
    body = {"runtime": "python3", "handler": "app.handler", "timeout_s": 60,
            "code": {"zip_base64": base64.b64encode(zip_of(ECHO_PY)).decode()}}
    return requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=auth(role),
                        timeout=120)


def test_whoami_tells_each_key_its_tenant_and_role(srv):
    for role, (key_id, _, tenant, want_role) in KEYS.items():
        r = requests.get(f"{srv.url}/v1/whoami", headers=auth(role), timeout=60)
        assert r.status_code == 200, r.text
        me = r.json()
        assert me["access_key_id"] == key_id
        assert me["tenant"] == (tenant or "default")
        assert me["role"] == (want_role or "developer")
        assert len(me["account_id"]) == 12 and me["account_id"].isdigit()
        assert (me["account_id"] == "000000000000") == (me["tenant"] == "default")
        assert me["development"] is False
    r = requests.get(f"{srv.url}/v1/whoami", timeout=60)
    assert r.status_code == 401


def test_a_viewer_reads_and_does_nothing_else(srv):
    name = unique("viewed")
    assert deploy_as(srv, "developer", name).status_code == 201
    r = requests.get(f"{srv.url}/v1/functions/{name}", headers=auth("viewer"), timeout=60)
    assert r.status_code == 200, r.text
    assert_error(deploy_as(srv, "viewer", name), 403, "forbidden", "viewer", "deploy",
                 "developer")
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={}, headers=auth("viewer"),
                      timeout=60)
    assert_error(r, 403, "forbidden", "viewer", "invoke")
    r = requests.delete(f"{srv.url}/v1/functions/{name}", headers=auth("viewer"), timeout=60)
    assert_error(r, 403, "forbidden", "viewer")
    assert requests.get(f"{srv.url}/v1/functions/{name}", headers=auth("viewer"),
                        timeout=60).status_code == 200


def test_an_invoker_invokes_and_reads_its_calls_only(srv):
    name = unique("invoked")
    assert deploy_as(srv, "developer", name).status_code == 201
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"a": 1},
                      headers=auth("invoker"), timeout=120)
    assert r.status_code == 200 and r.json() == {"echo": {"a": 1}}, r.text
    rid = r.headers["X-Mayfly-Request-Id"]

    def record():
        got = requests.get(f"{srv.url}/v1/invocations/{rid}", headers=auth("invoker"),
                           timeout=60)
        return got.json() if got.status_code == 200 else None
    rec = wait_for("the call's record", record)
    assert rec["status"] == "success"
    for path in (f"/v1/functions/{name}/logs", f"/v1/functions/{name}",
                 f"/v1/functions/{name}/invocations"):
        r = requests.get(f"{srv.url}{path}", headers=auth("invoker"), timeout=60)
        assert_error(r, 403, "forbidden", "invoker", "read")
    assert_error(deploy_as(srv, "invoker", name), 403, "forbidden", "invoker", "deploy")
    # Another key's call of the same function, sync and async: the invoker
    # finds neither, nor may it replay them; the developer reads both.
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"b": 2},
                      headers=auth("developer"), timeout=120)
    assert r.status_code == 200, r.text
    others = [r.headers["X-Mayfly-Request-Id"]]
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"c": 3},
                      headers={**auth("developer"), "X-Mayfly-Invocation-Type": "Event"},
                      timeout=120)
    assert r.status_code == 202, r.text
    others.append(r.json()["request_id"])
    for other in others:
        def done():
            got = requests.get(f"{srv.url}/v1/invocations/{other}", headers=auth("developer"),
                               timeout=60)
            return got.status_code == 200 and got.json()["status"] == "success"
        wait_for("the other call's record", done)
        for path in (f"/v1/invocations/{other}", f"/v1/invocations/{other}/event"):
            r = requests.get(f"{srv.url}{path}", headers=auth("invoker"), timeout=60)
            assert_error(r, 404, "not_found", other)
        r = requests.post(f"{srv.url}/v1/invocations/{other}/replay", headers=auth("invoker"),
                          timeout=60)
        assert_error(r, 404, "not_found", other)
    # Its own async call, once it has run through its attempts, is still its.
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"d": 4},
                      headers={**auth("invoker"), "X-Mayfly-Invocation-Type": "Event"},
                      timeout=120)
    assert r.status_code == 202, r.text
    mine = r.json()["request_id"]

    last = []

    def own_done():
        got = requests.get(f"{srv.url}/v1/invocations/{mine}", headers=auth("invoker"),
                           timeout=60)
        last[:] = [got.status_code, got.text]
        return got.status_code == 200 and got.json()["status"] == "success"
    # Three test files share the machine: the event may wait behind theirs.
    try:
        wait_for("the invoker's async call", own_done, timeout=300)
    except AssertionError as e:
        raise AssertionError(f"{e}; its record read last: {last}") from None


def test_tenants_are_for_admins(srv):
    r = requests.get(f"{srv.url}/v1/tenants", headers=auth("developer"), timeout=60)
    assert_error(r, 403, "forbidden", "developer", "administer", "admin")
    r = requests.get(f"{srv.url}/v1/tenants", headers=auth("admin"), timeout=60)
    assert r.status_code == 200, r.text
    tenants = {t["name"]: t for t in r.json()["tenants"]}
    assert set(tenants) == {"default", "team-b"}
    assert tenants["default"]["keys"] == 4
    assert tenants["default"]["roles"] == {"admin": 1, "developer": 1, "invoker": 1, "viewer": 1}
    r = requests.get(f"{srv.url}/v1/tenants/team-b", headers=auth("admin"), timeout=60)
    assert r.status_code == 200 and r.json()["roles"] == {"developer": 1}, r.text
    r = requests.get(f"{srv.url}/v1/tenants/nobody", headers=auth("admin"), timeout=60)
    assert_error(r, 404, "not_found", "nobody")


def test_the_lambda_api_checks_roles(srv):
    pytest.importorskip("boto3")
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    def client(role):
        key_id, secret, _, _ = KEYS[role]
        return boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                     region_name="us-east-1").client(
            "lambda", endpoint_url=srv.url,
            config=Config(retries={"max_attempts": 1}, read_timeout=120))
    name = unique("lam-roles")
    dev, viewer, invoker = client("developer"), client("viewer"), client("invoker")
    dev.create_function(FunctionName=name, Runtime="python3.12", Handler="app.handler",
                        Role="arn:aws:iam::000000000000:role/x", Timeout=60,
                        Code={"ZipFile": zip_of(ECHO_PY)})
    with pytest.raises(ClientError) as e:
        viewer.create_function(FunctionName=unique("nope"), Runtime="python3.12",
                               Handler="app.handler", Role="arn:aws:iam::000000000000:role/x",
                               Code={"ZipFile": zip_of(ECHO_PY)})
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "viewer" in e.value.response["Error"]["Message"]
    assert name in [f["FunctionName"] for f in viewer.list_functions()["Functions"]]
    out = invoker.invoke(FunctionName=name, Payload=b'{"b": 2}')
    assert out["StatusCode"] == 200 and out["Payload"].read() == b'{"echo": {"b": 2}}'
    with pytest.raises(ClientError) as e:
        invoker.get_function(FunctionName=name)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as e:
        viewer.invoke(FunctionName=name, Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def test_a_url_with_key_auth_takes_a_key_that_may_invoke(srv):
    name = unique("url-roles")
    assert deploy_as(srv, "developer", name).status_code == 201
    r = requests.put(f"{srv.url}/v1/functions/{name}/url", json={"auth": "key"},
                     headers=auth("developer"), timeout=60)
    assert r.status_code == 201, r.text
    r = requests.get(f"{srv.url}/url/{name}/x", headers=auth("invoker"), timeout=120)
    assert r.status_code == 200, r.text
    r = requests.get(f"{srv.url}/url/{name}/x", headers=auth("viewer"), timeout=60)
    assert r.status_code == 403 and "viewer" in r.text, r.text


def test_the_cli_shows_who_it_is_and_the_tenants(srv):
    key_id, secret, _, _ = KEYS["admin"]
    env = {"MAYFLY_TOKEN": f"{key_id}:{secret}"}
    out = run_cli(srv.url, "whoami", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{key_id} in tenant default (role admin, account 000000000000)"
    out = run_cli(srv.url, "tenant", "ls", env=env)
    assert out.returncode == 0 and "team-b" in out.stdout, out.stderr
    key_id, secret, _, _ = KEYS["viewer"]
    out = run_cli(srv.url, "tenant", "ls", env={"MAYFLY_TOKEN": f"{key_id}:{secret}"})
    assert out.returncode == 1 and "viewer" in out.stderr, out.stderr


@pytest.mark.parametrize("line,mentions", [
    ("AKIAX s Team_B developer", "tenant `Team_B`"),
    ("AKIAX s default owner", "role `owner`"),
    ("AKIAX s default admin extra", "ACCESS_KEY_ID SECRET [TENANT [ROLE]]"),
    ("AKIAX s\nAKIAX t", "given twice"),
])
def test_a_bad_keys_file_stops_the_start_naming_the_line(tmp_path, line, mentions):
    path = tmp_path / "keys"
    path.write_text(line + "\n")
    out = subprocess.run([MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}",
                          "--data", str(tmp_path / "data"), "--keys", str(path)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode != 0, out.stderr
    assert "line" in out.stderr and mentions in out.stderr, out.stderr


def test_keys_from_the_environment_take_a_tenant_and_role(server):
    srv = server(env={"MAYFLY_ACCESS_KEYS": "AKIAENV1:s1:team-c:viewer,AKIAENV2:s2"})
    me = requests.get(f"{srv.url}/v1/whoami", headers={"Authorization": "Bearer AKIAENV1:s1"},
                      timeout=60).json()
    assert (me["tenant"], me["role"]) == ("team-c", "viewer")
    me = requests.get(f"{srv.url}/v1/whoami", headers={"Authorization": "Bearer AKIAENV2:s2"},
                      timeout=60).json()
    assert (me["tenant"], me["role"]) == ("default", "developer")


def test_development_mode_is_the_default_tenants_admin(server):
    srv = server()
    me = requests.get(f"{srv.url}/v1/whoami", timeout=60).json()
    assert me == {"access_key_id": "", "tenant": "default", "role": "admin",
                  "account_id": "000000000000", "development": True}
    r = requests.get(f"{srv.url}/v1/tenants", timeout=60)
    assert r.status_code == 200 and [t["name"] for t in r.json()["tenants"]] == ["default"]
