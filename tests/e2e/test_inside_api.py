"""The platform's API from inside a function (DESIGN.md §3): the instance's
own listener at 127.0.0.1:9001 serves /mayfly/v1/… (MAYFLY_API), the same
routes as the server's /v1, with the calling function as the identity and
its `permissions` as what it may reach. A call a function makes is a call of
its own, linked to its caller by caller_request_id."""

import json

import requests

from conftest import (deploy_py, get_record, invoke, invoke_ok, unique, wait_for)

# A function that sends one request to its MAYFLY_API, as the event says,
# and answers with what came back.
CALLER = r"""
import json, os, urllib.request, urllib.error
def handler(event, context):
    req = urllib.request.Request(os.environ["MAYFLY_API"] + event["path"],
                                 data=json.dumps(event.get("body", {})).encode(),
                                 method=event.get("method", "POST"),
                                 headers=event.get("headers", {}))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return {"status": r.status, "body": r.read().decode(), "headers": dict(r.headers),
                    "me": context.aws_request_id}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode(), "me": context.aws_request_id}
"""

CALLEE = r"""
import os
def handler(event, context):
    return {"got": event, "traceparent": os.environ.get("TRACEPARENT")}
"""


def test_the_api_url_is_in_the_environment(shared_server):
    srv = shared_server
    name = unique("env")
    deploy_py(srv, name, "import os\ndef handler(e, c):\n    return os.environ['MAYFLY_API']\n")
    assert invoke_ok(srv, name).json() == "http://127.0.0.1:9001/mayfly/v1"


def test_a_function_invokes_another_sync_and_the_records_are_linked(shared_server):
    srv = shared_server
    callee, caller = unique("callee"), unique("caller")
    deploy_py(srv, callee, CALLEE)
    deploy_py(srv, caller, CALLER, permissions=[f"invoke:{callee}"])
    out = invoke_ok(srv, caller, {"path": f"/functions/{callee}/invoke",
                                  "body": {"n": 7}}).json()
    assert out["status"] == 200, out
    body = json.loads(out["body"])
    assert body["got"] == {"n": 7}
    callee_id = out["headers"]["X-Mayfly-Request-Id"]
    rec = get_record(srv, callee_id)
    assert rec["function"] == callee and rec["caller_request_id"] == out["me"]
    # The callee's span is a child of the caller's: same trace.
    caller_rec = get_record(srv, out["me"])
    assert "caller_request_id" not in caller_rec
    assert body["traceparent"].split("-")[1] == out["me"].replace("-", "")


def test_a_function_invokes_another_async(shared_server):
    srv = shared_server
    callee, caller = unique("callee"), unique("caller")
    deploy_py(srv, callee, CALLEE)
    deploy_py(srv, caller, CALLER, permissions=["invoke:*"])
    out = invoke_ok(srv, caller, {"path": f"/functions/{callee}/invoke", "body": {"a": 1},
                                  "headers": {"X-Mayfly-Invocation-Type": "Event"}}).json()
    assert out["status"] == 202, out
    rid = json.loads(out["body"])["request_id"]
    rec = wait_for("the async call's success",
                   lambda: (lambda r: r if r.get("status") == "success" else None)(
                       get_record(srv, rid)), timeout=60)
    assert rec["caller_request_id"] == out["me"] and rec["function"] == callee


def test_without_the_permission_the_answer_is_403_naming_it(shared_server):
    srv = shared_server
    callee, caller = unique("callee"), unique("caller")
    deploy_py(srv, callee, CALLEE)
    deploy_py(srv, caller, CALLER, permissions=["invoke:someone-else", "kv:*"])
    out = invoke_ok(srv, caller, {"path": f"/functions/{callee}/invoke"}).json()
    assert out["status"] == 403, out
    err = json.loads(out["body"])["error"]
    assert err["code"] == "forbidden"
    assert f"`invoke:{callee}`" in err["message"] and caller in err["message"]
    # Nothing ran.
    r = invoke(srv, callee, {})
    assert r.headers["X-Mayfly-Cold-Start"] == "1"


def test_routes_not_served_inside_are_404_and_the_runtime_api_still_works(shared_server):
    srv = shared_server
    caller = unique("caller")
    deploy_py(srv, caller, CALLER, permissions=["invoke:*"])
    for path, method in [("/functions", "GET"), (f"/functions/{caller}", "DELETE"),
                         ("/invocations", "GET")]:
        out = invoke_ok(srv, caller, {"path": path, "method": method}).json()
        assert out["status"] == 404, (path, out)
    # The function is still there, and still answers.
    invoke_ok(srv, caller, {"path": "/nothing", "method": "GET"})


def test_revoking_a_permission_applies_to_running_instances(shared_server):
    srv = shared_server
    callee, caller = unique("callee"), unique("caller")
    deploy_py(srv, callee, CALLEE)
    deploy_py(srv, caller, CALLER, permissions=[f"invoke:{callee}"])
    ok = invoke_ok(srv, caller, {"path": f"/functions/{callee}/invoke"}).json()
    assert ok["status"] == 200
    deploy_py(srv, caller, CALLER, permissions=[])
    denied = invoke_ok(srv, caller, {"path": f"/functions/{callee}/invoke"}).json()
    assert denied["status"] == 403


RECURSIVE = r"""
import json, os, urllib.request, urllib.error
def handler(event, context):
    # Calls itself, sync, until the platform stops the chain.
    req = urllib.request.Request(
        os.environ["MAYFLY_API"] + "/functions/" + context.function_name + "/invoke",
        data=json.dumps({"depth": event.get("depth", 0) + 1}).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        return {"stopped_at": event.get("depth", 0), "status": e.code,
                "error": json.loads(e.read())["error"]}
"""


def test_a_function_calling_itself_is_stopped_after_16_calls(shared_server):
    srv = shared_server
    name = unique("loop")
    deploy_py(srv, name, RECURSIVE, permissions=[f"invoke:{name}"], max_concurrency=20,
              memory_mb=128)
    out = invoke_ok(srv, name, {}, timeout=600).json()
    assert out["status"] == 508 and out["error"]["code"] == "loop_detected", out
    # The outside call is depth 0; calls 1..16 ran, the 17th was refused.
    assert out["stopped_at"] == 16, out


def test_cli_deploy_sets_permissions_and_volumes(shared_server, tmp_path):
    srv = shared_server
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(CALLEE)
    name = unique("cliperm")
    p = srv.cli("deploy", name, str(app), "--runtime", "python3", "--handler", "app.handler",
                "--permission", "kv:cart", "--permission", "invoke:*")
    assert p.returncode == 0, p.stderr
    fn = json.loads(srv.cli("get", name).stdout)
    assert fn["permissions"] == ["kv:cart", "invoke:*"] and fn["volumes"] == []
    # Kept when left out; `''` sets none.
    assert srv.cli("deploy", name, str(app), "--timeout", "9").returncode == 0
    assert json.loads(srv.cli("get", name).stdout)["permissions"] == ["kv:cart", "invoke:*"]
    assert srv.cli("deploy", name, str(app), "--permission", "").returncode == 0
    assert json.loads(srv.cli("get", name).stdout)["permissions"] == []
    # A bad one is the server's 400, naming it; a volume without its
    # permission too.
    p = srv.cli("deploy", name, str(app), "--permission", "db:x")
    assert p.returncode != 0 and "permissions[0]" in p.stderr, p.stderr
    vol = unique("vol")
    r = requests.put(f"{srv.url}/v1/volumes/{vol}", json={"size_mb": 8}, timeout=120)
    assert r.status_code == 201, r.text
    p = srv.cli("deploy", name, str(app), "--volume", f"{vol}:/mnt/data:ro")
    assert p.returncode != 0 and f"volume:{vol}" in p.stderr, p.stderr
    p = srv.cli("deploy", name, str(app), "--volume", f"{vol}:/mnt/data:ro",
                "--permission", f"volume:{vol}")
    assert p.returncode == 0, p.stderr
    fn = json.loads(srv.cli("get", name).stdout)
    assert fn["volumes"] == [{"name": vol, "path": "/mnt/data", "read_only": True}]
    assert srv.cli("deploy", name, str(app), "--volume", "").returncode == 0
    assert json.loads(srv.cli("get", name).stdout)["volumes"] == []
    assert requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=60).status_code == 204
    p = srv.cli("deploy", name, str(app), "--volume", "nopath")
    assert p.returncode == 2 and "NAME:/mnt/DIR" in p.stderr, p.stderr
