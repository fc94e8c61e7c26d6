"""The runtimes' helpers for the platform's API (docs/state.md): Python's
`import mayfly`, Node's `require('mayfly')` and the C library's mayfly_kv_*
and mayfly_invoke keep state in a KV store and call other functions with no
HTTP code in the function; each call goes through the instance's own
listener with the function's permissions."""

import json

from conftest import (build_c_bootstrap, deploy, deploy_py, executable, get_record, invoke_ok,
                      unique)

PY_KV = r"""
import mayfly
def handler(event, context):
    s = mayfly.kv(event["store"])
    out = {}
    v1 = s.put("doc", {"a": 1})
    out["get_doc"] = s.get("doc")
    out["text"] = (s.put("t", "héllo"), s.get("t"))[1]
    out["bytes"] = list(s.put("b", b"\x00\xff") and s.get("b"))
    try:
        s.put("doc", {"a": 2}, if_version=v1 + 1000)
        out["stale"] = "written"
    except mayfly.PreconditionFailed:
        out["stale"] = "refused"
    s.put("doc", {"a": 3}, if_version=v1)
    out["doc_after"] = s.get("doc")
    try:
        s.put("doc", 1, if_absent=True)
    except mayfly.PreconditionFailed:
        out["create_only"] = "refused"
    out["n"] = [s.incr("n"), s.incr("n", 5)]
    out["listed"] = [k["key"] for k in s.list(prefix="")]
    out["many"] = s.get_many(["doc", "n", "absent"])
    out["versions"] = len(s.write_many([{"op": "put", "key": "x", "value": [1]},
                                        {"op": "delete", "key": "t"}]))
    out["deleted"] = [s.delete("x"), s.delete("x")]
    out["missing"] = s.get("t", "default")
    try:
        mayfly.kv("not-mine").get("k")
    except mayfly.Forbidden as e:
        out["forbidden"] = e.message
    return out
"""

NODE_KV = r"""
const mayfly = require('mayfly');
exports.handler = async (event) => {
  const s = mayfly.kv(event.store);
  const out = {};
  const v1 = await s.put('doc', { a: 1 });
  out.get_doc = await s.get('doc');
  await s.put('t', 'héllo');
  out.text = await s.get('t');
  await s.put('b', Buffer.from([0, 255]));
  out.bytes = [...(await s.get('b'))];
  try {
    await s.put('doc', { a: 2 }, { ifVersion: v1 + 1000 });
    out.stale = 'written';
  } catch (e) {
    out.stale = e.status === 412 ? 'refused' : String(e);
  }
  out.n = [await s.incr('n'), await s.incr('n', 5)];
  out.listed = (await s.list('')).map((k) => k.key);
  out.deleted = [await s.delete('b'), await s.delete('b')];
  out.called = await mayfly.invoke(event.callee, { from: 'node' });
  try {
    await mayfly.kv('not-mine').get('k');
  } catch (e) {
    out.forbidden = e.status;
  }
  return out;
};
"""

C_KV = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "mayfly_runtime.h"

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char store[80];
    if (mayfly_json_get_string(ev->body, ev->body_len, "store", store, sizeof store) < 0)
        return mayfly_response_error(res, "BadEvent", "no store");
    uint64_t v1 = 0, v2 = 0;
    int rc = mayfly_kv_put(store, "k", "v1", 2, NULL, &v1);
    if (rc < 0)
        return mayfly_response_error(res, "Put", "%d %s", rc, mayfly_api_error());
    mayfly_kv_put_opts_t stale = {.if_version = v1 + 1000};
    int stale_rc = mayfly_kv_put(store, "k", "v2", 2, &stale, NULL);
    mayfly_kv_put_opts_t cas = {.if_version = v1, .content_type = "text/plain"};
    rc = mayfly_kv_put(store, "k", "v3", 2, &cas, &v2);
    if (rc < 0)
        return mayfly_response_error(res, "Cas", "%d %s", rc, mayfly_api_error());
    const char *val;
    size_t len;
    uint64_t ver;
    rc = mayfly_kv_get(store, "k", &val, &len, &ver);
    if (rc < 0)
        return mayfly_response_error(res, "Get", "%d %s", rc, mayfly_api_error());
    char got[16];
    snprintf(got, sizeof got, "%.*s", (int)len, val);
    int64_t n1 = 0, n2 = 0;
    mayfly_kv_incr(store, "n", 1, &n1);
    mayfly_kv_incr(store, "n", 41, &n2);
    int del = mayfly_kv_delete(store, "k", 0);
    int del2 = mayfly_kv_delete(store, "k", 0);
    int missing = mayfly_kv_get(store, "k", &val, &len, NULL);
    int forbidden = mayfly_kv_get("not-mine", "k", &val, &len, NULL);
    mayfly_response_printf(res,
                           "{\"stale\":%d,\"got\":\"%s\",\"version_moved\":%d,"
                           "\"n\":[%lld,%lld],\"del\":[%d,%d],\"missing\":%d,"
                           "\"forbidden\":%d,\"forbidden_status\":%d,",
                           stale_rc == -ECANCELED, got, ver == v2 && v2 > v1, (long long)n1,
                           (long long)n2, del, del2 == -ENOENT, missing == -ENOENT,
                           forbidden == -EACCES, mayfly_api_status());
    const char *result;
    size_t rlen;
    rc = mayfly_invoke(store, "{\"from\":\"c\"}", 12, 0, &result, &rlen);
    mayfly_response_printf(res, "\"called_rc\":%d,\"called\":", rc);
    mayfly_response_append(res, result, rlen);
    mayfly_response_append(res, "}", 1);
    return 0;
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
"""

CALLEE = "def handler(event, context):\n    return {'callee_got': event}\n"


def test_python_helpers(shared_server):
    srv = shared_server
    name, store = unique("pyhelp"), unique("st")
    deploy_py(srv, name, PY_KV, permissions=[f"kv:{store}"])
    r = invoke_ok(srv, name, {"store": store})
    out = r.json()
    assert out["get_doc"] == {"a": 1}
    assert out["text"] == "héllo"
    assert out["bytes"] == [0, 255]
    assert out["stale"] == "refused" and out["create_only"] == "refused"
    assert out["doc_after"] == {"a": 3}
    assert out["n"] == [1, 6]
    assert out["listed"] == ["b", "doc", "n", "t"]
    assert out["many"] == {"doc": {"a": 3}, "n": 6}
    assert out["versions"] == 2
    assert out["deleted"] == [True, False]
    assert out["missing"] == "default"
    assert "kv:not-mine" in out["forbidden"]
    # The values are the store's, read from outside as they were put.
    doc = srv_get(srv, store, "doc")
    assert doc.status_code == 200 and doc.json() == {"a": 3}
    assert doc.headers["Content-Type"].startswith("application/json")
    # The call's record counts its KV operations.
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["kv_ops"] >= 15


def srv_get(srv, store, key):
    import requests
    return requests.get(f"{srv.url}/v1/kv/{store}/{key}", timeout=30)


def test_node_helpers(shared_server):
    srv = shared_server
    name, store, callee = unique("nodehelp"), unique("st"), unique("callee")
    deploy_py(srv, callee, CALLEE)
    deploy(srv, name, {"index.js": NODE_KV}, runtime="nodejs", handler="index.handler",
           permissions=[f"kv:{store}", f"invoke:{callee}"])
    out = invoke_ok(srv, name, {"store": store, "callee": callee}).json()
    assert out["get_doc"] == {"a": 1} and out["text"] == "héllo" and out["bytes"] == [0, 255]
    assert out["stale"] == "refused"
    assert out["n"] == [1, 6]
    assert out["listed"] == ["b", "doc", "n", "t"]
    assert out["deleted"] == [True, False]
    assert out["called"] == {"callee_got": {"from": "node"}}
    assert out["forbidden"] == 403


def test_c_helpers(shared_server, tmp_path):
    srv = shared_server
    # The store and the callee share a name: one string in the event.
    name, callee = unique("chelp"), unique("callee")
    deploy_py(srv, callee, CALLEE)
    bootstrap = build_c_bootstrap(C_KV, tmp_path / "bootstrap")
    deploy(srv, name, {"bootstrap": executable(bootstrap.read_bytes())}, runtime="provided",
           handler=None, permissions=[f"kv:{callee}", f"invoke:{callee}"])
    out = invoke_ok(srv, name, {"store": callee}).json()
    assert out == {"stale": 1, "got": "v3", "version_moved": 1, "n": [1, 42], "del": [0, 1],
                   "missing": 1, "forbidden": 1, "forbidden_status": 403, "called_rc": 0,
                   "called": {"callee_got": {"from": "c"}}}, json.dumps(out)


def test_python_invoke_helper_sync_async_and_errors(shared_server):
    srv = shared_server
    caller, callee, failing = unique("pyinv"), unique("callee"), unique("failing")
    deploy_py(srv, callee, CALLEE)
    deploy_py(srv, failing, "def handler(e, c):\n    raise ValueError('nope')\n")
    deploy_py(srv, caller, r"""
import mayfly
def handler(event, context):
    out = {"sync": mayfly.invoke(event["callee"], {"x": 1}),
           "async": mayfly.invoke(event["callee"], {"x": 2}, asynchronous=True)}
    try:
        mayfly.invoke(event["failing"], {})
    except mayfly.FunctionError as e:
        out["error"] = [e.error_type, e.document["errorMessage"]]
    try:
        mayfly.invoke("no-such-fn-here", {})
    except mayfly.Forbidden as e:
        out["forbidden"] = e.status
    return out
""", permissions=[f"invoke:{callee}", f"invoke:{failing}"])
    r = invoke_ok(srv, caller, {"callee": callee, "failing": failing})
    out = r.json()
    assert out["sync"] == {"callee_got": {"x": 1}}
    assert out["error"] == ["ValueError", "nope"]
    assert out["forbidden"] == 403
    rec = get_record(srv, out["async"])
    assert rec["caller_request_id"] == r.headers["X-Mayfly-Request-Id"]


RIC_KV = r"""
// A stock runtime interface client's function: plain HTTP (Node's fetch)
// to MAYFLY_API, no helper.
exports.handler = async (event) => {
  const base = process.env.MAYFLY_API;
  const put = await fetch(`${base}/kv/${event.store}/greeting`,
                          { method: 'PUT', body: 'hello from ric',
                            headers: { 'Content-Type': 'text/plain' } });
  const got = await fetch(`${base}/kv/${event.store}/greeting`);
  return { put: put.status, version: (await put.json()).version,
           got: await got.text(), etag: got.headers.get('etag') };
};
"""


def test_a_stock_runtime_reaches_the_api_with_plain_http(shared_server):
    from test_lambda_api import ric_zip
    srv = shared_server
    name, store = unique("ric-kv"), unique("st")
    deploy(srv, name, ric_zip(RIC_KV.encode()), runtime="provided", handler="index.handler",
           permissions=[f"kv:{store}"])
    out = invoke_ok(srv, name, {"store": store}).json()
    assert out["put"] == 200 and out["got"] == "hello from ric"
    assert out["etag"] == f'"{out["version"]}"'
