"""The key-value stores (docs/state.md) against the real server: every
/v1/kv endpoint's answers and errors, conditions, TTLs, batches, bounds, the
second door from inside functions (permissions, kv_ops, exact increments
from concurrent callers), the CLI, and acknowledged writes surviving kill -9."""

import base64
import json
import signal
import subprocess
import threading
from datetime import datetime, timezone
from urllib.parse import quote

import pytest
import requests

from conftest import (MAYFLY_BIN, assert_error, cli_env, deploy_py, get_record, invoke_ok,
                      kv_counter_py, metric, metrics, unique, wait_for)


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def kv_url(srv, store, key=None, suffix=""):
    url = f"{srv.url}/v1/kv/{store}"
    if key is not None:
        url += "/" + quote(key, safe="")
    return url + suffix


def put(srv, store, key, data, headers=None, params=None):
    return requests.put(kv_url(srv, store, key), data=data, headers=headers or {},
                        params=params, timeout=60)


def put_ok(srv, store, key, data, **kw):
    r = put(srv, store, key, data, **kw)
    assert r.status_code == 200, r.text
    v = r.json()["version"]
    assert isinstance(v, int) and v > 0
    assert r.headers["ETag"] == f'"{v}"'
    return v


def get(srv, store, key):
    return requests.get(kv_url(srv, store, key), timeout=60)


def stats(srv, store):
    r = requests.get(kv_url(srv, store, suffix="/_stats"), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def batch(srv, store, body):
    return requests.post(kv_url(srv, store, suffix="/_batch"), json=body, timeout=60)


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# ---------------------------------------------------------------- one key


def test_put_then_get_returns_the_bytes_type_and_version(srv):
    store = unique("s")
    body = bytes(range(256))
    v = put_ok(srv, store, "bin", body, headers={"Content-Type": "image/x-test"})
    r = get(srv, store, "bin")
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["Content-Type"] == "image/x-test"
    assert r.headers["ETag"] == f'"{v}"'
    assert "X-Mayfly-Expires" not in r.headers
    # No type given: application/octet-stream. An empty value is a value.
    put_ok(srv, store, "empty", b"")
    r = get(srv, store, "empty")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["Content-Type"] == "application/octet-stream"


def test_keys_may_hold_slashes_and_any_utf8(srv):
    store = unique("s")
    for key in ["a/b/c", "été ☃", "with space?&=#", "x" * 1024]:
        put_ok(srv, store, key, key.encode())
        r = get(srv, store, key)
        assert r.status_code == 200 and r.content == key.encode(), key


def test_missing_key_is_404_and_bad_names_are_400(srv):
    store = unique("s")
    assert_error(get(srv, store, "nope"), 404, "not_found", "nope")
    assert_error(get(srv, "bad.name", "k"), 400, "bad_request", "store")
    assert_error(put(srv, "x" * 65, "k", b"v"), 400, "bad_request", "store")
    for reserved in ("_stats", "_batch"):
        assert_error(put(srv, store, reserved, b"v"), 400, "bad_request", reserved)
    assert_error(put(srv, store, "k" * 1025, b"v"), 400, "bad_request", "key", "1024")
    r = requests.put(f"{srv.url}/v1/kv/{store}/a%FFb", data=b"v", timeout=60)
    assert_error(r, 400, "bad_request", "UTF-8")
    r = requests.put(kv_url(srv, store, "k"), data=b"v", headers={"Content-Type": "a\tb"},
                     timeout=60)
    assert_error(r, 400, "bad_request", "Content-Type")
    # Nothing was written by any of them.
    assert stats(srv, store)["keys"] == 0


def test_versions_never_go_back_even_after_delete(srv):
    store = unique("s")
    v1 = put_ok(srv, store, "k", b"1")
    v2 = put_ok(srv, store, "k", b"2")
    assert v2 > v1
    assert requests.delete(kv_url(srv, store, "k"), timeout=60).status_code == 204
    v3 = put_ok(srv, store, "k", b"3")
    assert v3 > v2
    # One counter for every store.
    assert put_ok(srv, unique("s"), "k", b"x") > v3


def test_if_match_and_if_none_match(srv):
    store = unique("s")
    v = put_ok(srv, store, "k", b"one", headers={"If-None-Match": "*"})
    # Create only: refused once it exists.
    assert_error(put(srv, store, "k", b"two", headers={"If-None-Match": "*"}), 412,
                 "precondition_failed", "exists")
    # The right version wins, an old one loses.
    v2 = put_ok(srv, store, "k", b"two", headers={"If-Match": f'"{v}"'})
    assert_error(put(srv, store, "k", b"three", headers={"If-Match": f'"{v}"'}), 412,
                 "precondition_failed", str(v2))
    assert get(srv, store, "k").content == b"two"
    # If-Match on a key that is not there.
    assert_error(put(srv, store, "absent", b"x", headers={"If-Match": f'"{v2}"'}), 412,
                 "precondition_failed")
    assert get(srv, store, "absent").status_code == 404
    # Malformed conditions.
    assert_error(put(srv, store, "k", b"x", headers={"If-Match": "soon"}), 400, "bad_request",
                 "If-Match")
    assert_error(put(srv, store, "k", b"x", headers={"If-None-Match": '"3"'}), 400,
                 "bad_request", "If-None-Match")
    assert get(srv, store, "k").content == b"two"


def test_compare_and_set_race_has_exactly_one_winner(srv):
    store = unique("cas")
    v = put_ok(srv, store, "k", b"0")
    for round_ in range(5):
        barrier = threading.Barrier(4)
        codes = []

        def writer(i):
            barrier.wait()
            r = put(srv, store, "k", f"{round_}-{i}".encode(), headers={"If-Match": f'"{v}"'})
            codes.append((r.status_code, r))

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wins = [r for c, r in codes if c == 200]
        losses = [r for c, r in codes if c != 200]
        assert len(wins) == 1, [(c, r.text) for c, r in codes]
        for r in losses:
            assert_error(r, 412, "precondition_failed")
        v = wins[0].json()["version"]
        assert get(srv, store, "k").headers["ETag"] == f'"{v}"'


def test_delete(srv):
    store = unique("s")
    v = put_ok(srv, store, "k", b"x")
    r = requests.delete(kv_url(srv, store, "k"), headers={"If-Match": f'"{v + 1000}"'},
                        timeout=60)
    assert_error(r, 412, "precondition_failed")
    assert get(srv, store, "k").status_code == 200
    r = requests.delete(kv_url(srv, store, "k"), headers={"If-Match": f'"{v}"'}, timeout=60)
    assert r.status_code == 204 and r.content == b""
    assert_error(requests.delete(kv_url(srv, store, "k"), timeout=60), 404, "not_found")
    assert get(srv, store, "k").status_code == 404


def test_ttl_expires_the_key_and_the_sweep_removes_it(srv):
    store = unique("ttl")
    put_ok(srv, store, "q", b"x", params={"ttl": "1"})
    put_ok(srv, store, "h", b"y", headers={"X-Mayfly-TTL": "1"})
    put_ok(srv, store, "long", b"z", params={"ttl": "3600"})
    r = get(srv, store, "long")
    expires = parse_time(r.headers["X-Mayfly-Expires"])
    assert expires > datetime.now(timezone.utc)
    listing = requests.get(kv_url(srv, store), timeout=60).json()
    assert {k["key"]: k["expires"] is not None for k in listing["keys"]} == {
        "h": True, "long": True, "q": True}
    # Gone to readers once expired...
    wait_for("the short TTLs to expire",
             lambda: get(srv, store, "q").status_code == 404
             and get(srv, store, "h").status_code == 404)
    keys = [k["key"] for k in requests.get(kv_url(srv, store), timeout=60).json()["keys"]]
    assert keys == ["long"]
    # ...and removed in the background: the counts come down.
    wait_for("the sweep to remove expired keys", lambda: stats(srv, store)["keys"] == 1)
    # A put without a TTL makes a key that does not expire.
    put_ok(srv, store, "long", b"z")
    assert "X-Mayfly-Expires" not in get(srv, store, "long").headers


def test_bad_ttls_are_400_and_write_nothing(srv):
    store = unique("s")
    for params, headers in [({"ttl": "0"}, {}), ({"ttl": "31536001"}, {}), ({"ttl": "1.5"}, {}),
                            ({"ttl": "abc"}, {}), ({}, {"X-Mayfly-TTL": "-1"}),
                            ({"ttl": "5"}, {"X-Mayfly-TTL": "6"})]:
        r = put(srv, store, "k", b"v", headers=headers, params=params)
        assert_error(r, 400, "bad_request", "ttl")
    assert get(srv, store, "k").status_code == 404


# ---------------------------------------------------------------- listing


def test_list_pages_prefix_and_errors(srv):
    store = unique("ls")
    for i in range(25):
        put_ok(srv, store, f"k{i:02d}", b"v" * i)
    put_ok(srv, store, "other", b"x")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": "k", "limit": "10"}
        if cursor:
            params["cursor"] = cursor
        r = requests.get(kv_url(srv, store), params=params, timeout=60)
        assert r.status_code == 200, r.text
        doc = r.json()
        seen += doc["keys"]
        pages += 1
        cursor = doc["next"]
        if cursor is None:
            break
    assert pages == 3
    assert [k["key"] for k in seen] == [f"k{i:02d}" for i in range(25)]
    assert [k["size"] for k in seen] == list(range(25))
    assert all(isinstance(k["version"], int) and k["expires"] is None for k in seen)
    # The default page holds everything here; byte order.
    doc = requests.get(kv_url(srv, store), timeout=60).json()
    assert [k["key"] for k in doc["keys"]][-1] == "other" and doc["next"] is None
    for params, field in [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                          ({"limit": "ten"}, "limit"), ({"cursor": "nonsense"}, "cursor")]:
        assert_error(requests.get(kv_url(srv, store), params=params, timeout=60), 400,
                     "bad_request", field)


# ---------------------------------------------------------------- incr


def incr(srv, store, key, body=None):
    return requests.post(kv_url(srv, store, key, "/incr"),
                         data=json.dumps(body).encode() if body is not None else b"",
                         timeout=60)


def test_incr(srv):
    store = unique("c")
    r = incr(srv, store, "n")
    assert r.status_code == 200, r.text
    assert r.json()["value"] == 1
    r = incr(srv, store, "n", {"by": 41})
    assert r.json()["value"] == 42 and r.headers["ETag"] == f'"{r.json()["version"]}"'
    assert get(srv, store, "n").content == b"42"
    assert incr(srv, store, "n", {"by": -50}).json()["value"] == -8
    # With a TTL.
    r = incr(srv, store, "window", {"by": 2, "ttl": 3600})
    assert r.json()["value"] == 2
    assert "X-Mayfly-Expires" in get(srv, store, "window").headers
    # Not a number, or out of range: 409, the value kept.
    put_ok(srv, store, "word", b"hello")
    assert_error(incr(srv, store, "word"), 409, "conflict", "not a decimal integer")
    put_ok(srv, store, "max", b"9223372036854775807")
    assert_error(incr(srv, store, "max"), 409, "conflict", "overflow")
    assert get(srv, store, "max").content == b"9223372036854775807"
    # Bad bodies.
    for body, field in [({"by": "1"}, "by"), ({"by": 1.5}, "by"), ({"step": 1}, "step"),
                        ({"ttl": 0}, "ttl"), ([1], "object")]:
        assert_error(incr(srv, store, "n", body), 400, "bad_request", field)
    assert get(srv, store, "n").content == b"-8"


# ---------------------------------------------------------------- batches


def test_batch_reads_at_one_point(srv):
    store = unique("b")
    va = put_ok(srv, store, "a", b"\x00\x01bin", headers={"Content-Type": "app/x"})
    r = batch(srv, store, {"get": ["a", "missing"]})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items[0] == {"key": "a", "found": True,
                        "value_base64": base64.b64encode(b"\x00\x01bin").decode(),
                        "content_type": "app/x", "version": va}
    assert items[1]["key"] == "missing" and items[1]["found"] is False


def test_batch_writes_all_or_nothing(srv):
    store = unique("b")
    v0 = put_ok(srv, store, "a", b"old")
    ops = [
        {"op": "put", "key": "a", "value": "new", "content_type": "text/plain"},
        {"op": "put", "key": "b", "value_base64": base64.b64encode(b"\xff\x00").decode(),
         "ttl": 3600},
        {"op": "delete", "key": "gone"},
        {"op": "put", "key": "c", "value": "C", "if_version": v0 + 100000},
    ]
    r = batch(srv, store, {"ops": ops})
    msg = assert_error(r, 412, "precondition_failed", "ops[3]")
    assert msg.startswith("ops[3]: ")
    # Nothing changed.
    assert get(srv, store, "a").content == b"old"
    assert get(srv, store, "b").status_code == 404
    assert stats(srv, store)["keys"] == 1
    # Without the failing condition, all of it.
    ops[3]["if_version"] = v0
    ops[3]["key"] = "a"
    ops[0]["key"] = "a2"
    r = batch(srv, store, {"ops": ops})
    assert r.status_code == 200, r.text
    versions = r.json()["versions"]
    assert versions[2] is None and all(isinstance(v, int) for v in versions[:2] + versions[3:])
    assert get(srv, store, "a").content == b"C"
    assert get(srv, store, "b").content == b"\xff\x00"
    assert get(srv, store, "a2").headers["Content-Type"] == "text/plain"
    # A create-only op on a key that exists fails the whole batch.
    r = batch(srv, store, {"ops": [{"op": "put", "key": "z", "value": "1"},
                                   {"op": "put", "key": "a", "value": "x", "if_absent": True}]})
    assert_error(r, 412, "precondition_failed", "ops[1]")
    assert get(srv, store, "z").status_code == 404


def test_malformed_batches_are_400_naming_the_item(srv):
    store = unique("b")
    cases = [
        ({"ops": [{"op": "put", "key": "a", "value": "1"}] * 3
          + [{"op": "put", "key": "", "value": "x"}]}, "ops[3].key"),
        ({"ops": [{"op": "upsert", "key": "a"}]}, "ops[0].op"),
        ({"ops": [{"op": "put", "key": "a"}]}, "ops[0]"),
        ({"ops": [{"op": "put", "key": "a", "value": "x", "ttl": 0}]}, "ops[0].ttl"),
        ({"ops": [{"op": "put", "key": "a", "value_base64": "***"}]}, "ops[0].value_base64"),
        ({"ops": [{"op": "delete", "key": "a", "value": "x"}]}, "ops[0].value"),
        ({"ops": [{"op": "put", "key": "_stats", "value": "x"}]}, "ops[0].key"),
        ({"ops": [{"op": "put", "key": "a", "value": "x", "if_version": "1"}]},
         "ops[0].if_version"),
        ({"get": ["a", 7]}, "get[1]"),
        ({"get": [f"k{i}" for i in range(101)]}, "100"),
        ({"ops": [{"op": "delete", "key": f"k{i}"} for i in range(101)]}, "100"),
        ({"get": ["a"], "ops": []}, "one of"),
        ({"gets": ["a"]}, "gets"),
    ]
    for body, mention in cases:
        assert_error(batch(srv, store, body), 400, "bad_request", mention)
    r = requests.post(kv_url(srv, store, suffix="/_batch"), data=b"{not json", timeout=60)
    assert_error(r, 400, "bad_request", "JSON")
    assert stats(srv, store)["keys"] == 0


# ---------------------------------------------------------------- stores


def test_stats_stores_and_dropping_a_store(srv):
    store = unique("st")
    put_ok(srv, store, "ab", b"12345")
    put_ok(srv, store, "c", b"")
    get(srv, store, "ab")
    get(srv, store, "c")
    s = stats(srv, store)
    assert s["store"] == store and s["keys"] == 2 and s["bytes"] == 2 + 5 + 1
    assert s["reads"] == 2 and s["writes"] == 2
    assert s["max_bytes"] == 256 << 20 and s["max_keys"] == 1000000
    stores = requests.get(f"{srv.url}/v1/kv", timeout=60).json()["stores"]
    assert {"name": store, "tenant": "default", "keys": 2, "bytes": 8} in stores
    r = requests.delete(kv_url(srv, store), timeout=60)
    assert r.status_code == 204
    assert get(srv, store, "ab").status_code == 404
    assert stats(srv, store)["keys"] == 0
    assert store not in [s["name"] for s in requests.get(f"{srv.url}/v1/kv", timeout=60).json()
                         ["stores"]]
    assert_error(requests.delete(kv_url(srv, store), timeout=60), 404, "not_found", store)


def test_metrics(srv):
    store = unique("m")
    put_ok(srv, store, "a", b"123")
    put_ok(srv, store, "b", b"4")
    get(srv, store, "a")
    m = metrics(srv)
    assert metric(m, "mayfly_kv_keys", store=store) == 2
    assert metric(m, "mayfly_kv_bytes", store=store) == 1 + 3 + 1 + 1
    assert metric(m, "mayfly_kv_writes_total", store=store) == 2
    assert metric(m, "mayfly_kv_reads_total", store=store) == 1


# ---------------------------------------------------------------- bounds


def test_bounds_413_and_507(server):
    srv = server("--kv-max-value-kb", "512", "--kv-max-store-mb", "1", "--kv-max-keys", "5")
    big = b"x" * (512 << 10)
    # Over the value bound: refused from the head, in a batch too.
    assert_error(put(srv, "s", "k", big + b"x"), 413, "payload_too_large")
    r = batch(srv, "s", {"ops": [{"op": "put", "key": "k",
                                  "value_base64": base64.b64encode(big + b"x").decode()}]})
    assert_error(r, 413, "payload_too_large", "ops[0]")
    # Bytes: two big values fit in 1 MiB, a third does not.
    put_ok(srv, "bytes", "a", big)
    assert_error(put(srv, "bytes", "b", big), 507, "insufficient_storage", "store bytes is full")
    put_ok(srv, "bytes", "b", big[: 400 << 10])
    # Keys: five, then a sixth is one too many; overwriting still goes.
    for i in range(5):
        put_ok(srv, "keys", f"k{i}", b"v")
    assert_error(put(srv, "keys", "k5", b"v"), 507, "insufficient_storage", "store keys is full")
    assert_error(incr(srv, "keys", "n"), 507, "insufficient_storage")
    r = batch(srv, "keys", {"ops": [{"op": "delete", "key": "k0"},
                                    {"op": "put", "key": "k5", "value": "v"},
                                    {"op": "put", "key": "k6", "value": "v"}]})
    assert_error(r, 507, "insufficient_storage", "ops[2]", "store keys is full")
    assert get(srv, "keys", "k0").status_code == 200
    put_ok(srv, "keys", "k0", b"again")
    # Deleting makes room.
    assert requests.delete(kv_url(srv, "keys", "k1"), timeout=60).status_code == 204
    put_ok(srv, "keys", "k5", b"v")
    s = stats(srv, "keys")
    assert (s["keys"], s["max_keys"], s["max_bytes"]) == (5, 5, 1 << 20)


@pytest.mark.parametrize("flag,value", [("--kv-max-value-kb", "0"), ("--kv-max-store-mb", "x"),
                                        ("--kv-max-keys", "-1"), ("--kv-max-keys", "")])
def test_bad_bound_flags_are_usage_errors(flag, value):
    p = subprocess.run([MAYFLY_BIN, "server", flag, value], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2, p.stderr
    assert flag in p.stderr


def test_help_documents_the_kv_flags():
    p = subprocess.run([MAYFLY_BIN, "server", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0
    for flag in ("--kv-max-value-kb", "--kv-max-store-mb", "--kv-max-keys"):
        assert flag in p.stdout


# ---------------------------------------------------------------- inside functions

KV_CALLER = r"""
import json, os, urllib.request, urllib.error
def call(method, path, body=None, headers=None):
    req = urllib.request.Request(os.environ["MAYFLY_API"] + path, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return {"status": r.status, "body": r.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}
def handler(event, context):
    return [call(c["method"], c["path"], c.get("body", "").encode() or None, c.get("headers"))
            for c in event["calls"]]
"""

COUNTER = kv_counter_py("counter")


def test_a_function_uses_its_store_and_the_record_counts_kv_ops(srv):
    name, store = unique("kvfn"), unique("fnstore")
    deploy_py(srv, name, KV_CALLER, permissions=[f"kv:{store}"])
    calls = [
        {"method": "PUT", "path": f"/kv/{store}/greeting", "body": "hello"},
        {"method": "GET", "path": f"/kv/{store}/greeting"},
        {"method": "POST", "path": f"/kv/{store}/hits/incr"},
        {"method": "POST", "path": f"/kv/{store}/_batch",
         "body": json.dumps({"get": ["greeting", "hits"]}),
         "headers": {"Content-Type": "application/json"}},
        {"method": "GET", "path": f"/kv/{store}/_stats"},
        {"method": "GET", "path": f"/kv/{store}?prefix=g"},
    ]
    r = invoke_ok(srv, name, {"calls": calls})
    out = r.json()
    assert [c["status"] for c in out] == [200, 200, 200, 200, 200, 200], out
    assert out[1]["body"] == "hello"
    assert [i["found"] for i in json.loads(out[3]["body"])["items"]] == [True, True]
    assert json.loads(out[4]["body"])["keys"] == 2
    assert [k["key"] for k in json.loads(out[5]["body"])["keys"]] == ["greeting"]
    # The same data outside.
    assert get(srv, store, "greeting").content == b"hello"
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["kv_ops"] == len(calls)
    # Store-wide operations are the outside door's only.
    out = invoke_ok(srv, name, {"calls": [{"method": "GET", "path": "/kv"},
                                          {"method": "DELETE", "path": f"/kv/{store}"}]}).json()
    assert [c["status"] for c in out] in ([404, 405], [405, 405], [404, 404]), out
    assert get(srv, store, "greeting").status_code == 200


def test_without_the_permission_a_function_gets_403_naming_it(srv):
    name, store = unique("nokv"), unique("private")
    put_ok(srv, store, "secret", b"s")
    deploy_py(srv, name, KV_CALLER, permissions=["kv:someone-else"])
    out = invoke_ok(srv, name, {"calls": [
        {"method": "GET", "path": f"/kv/{store}/secret"},
        {"method": "PUT", "path": f"/kv/{store}/secret", "body": "overwritten"},
        {"method": "GET", "path": f"/kv/{store}/_stats"},
    ]}).json()
    for c in out:
        assert c["status"] == 403, out
        err = json.loads(c["body"])["error"]
        assert err["code"] == "forbidden" and f"`kv:{store}`" in err["message"]
    assert get(srv, store, "secret").content == b"s"


def test_concurrent_increments_from_eight_functions_sum_exactly(srv):
    name = unique("counter")
    deploy_py(srv, name, COUNTER, permissions=["kv:counter"])
    per_call, callers = 25, 8
    results, errors = [], []

    def call():
        try:
            results.append(invoke_ok(srv, name, {"n": per_call}, timeout=300).json())
        except Exception as e:  # reported below, with every other failure
            errors.append(repr(e))

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    seen = sorted(v for got in results for v in got)
    # Every increment applied once: the values handed out are 1..200.
    assert seen == list(range(1, per_call * callers + 1))
    assert get(srv, "counter", "n").content == str(per_call * callers).encode()


# ---------------------------------------------------------------- CLI


def cli(srv, *args, input=None):
    """Runs the CLI with bytes in and out."""
    return subprocess.run([MAYFLY_BIN, *args], input=input, capture_output=True,
                          env=cli_env(srv.url), timeout=60)


def test_cli_put_get_rm_ls(srv):
    store = unique("cli")
    p = cli(srv, "kv", "put", store, "greeting", "hello world")
    assert p.returncode == 0, p.stderr
    version = int(p.stdout)
    p = cli(srv, "kv", "get", store, "greeting")
    assert p.returncode == 0 and p.stdout == b"hello world"
    # From stdin, bytes as they are, with a type and a TTL; a key with a slash.
    data = bytes(range(256)) * 4
    p = cli(srv, "kv", "put", store, "dir/file", "-", "--content-type", "app/x", "--ttl", "3600",
            input=data)
    assert p.returncode == 0, p.stderr
    assert cli(srv, "kv", "get", store, "dir/file").stdout == data
    r = get(srv, store, "dir/file")
    assert r.headers["Content-Type"] == "app/x" and "X-Mayfly-Expires" in r.headers
    # No VALUE: stdin too.
    assert cli(srv, "kv", "put", store, "piped", input=b"from stdin").returncode == 0
    assert get(srv, store, "piped").content == b"from stdin"
    # A stale version: refused, exit 1, the server's message.
    p = cli(srv, "kv", "put", store, "greeting", "x", "--if-version", str(version + 1000))
    assert p.returncode == 1 and b"precondition_failed" in p.stderr
    p = cli(srv, "kv", "put", store, "greeting", "bye", "--if-version", str(version))
    assert p.returncode == 0
    # ls: a table of the keys; with a prefix; with no store, the stores.
    p = cli(srv, "kv", "ls", store)
    assert p.returncode == 0
    lines = p.stdout.decode().splitlines()
    assert lines[0].split() == ["KEY", "VERSION", "SIZE", "EXPIRES"]
    assert [line.split()[0] for line in lines[1:]] == ["dir/file", "greeting", "piped"]
    p = cli(srv, "kv", "ls", store, "--prefix", "gr")
    assert [line.split()[0] for line in p.stdout.decode().splitlines()[1:]] == ["greeting"]
    p = cli(srv, "kv", "ls")
    assert p.returncode == 0 and store.encode() in p.stdout
    # rm, then get fails with the server's 404.
    p = cli(srv, "kv", "rm", store, "greeting")
    assert p.returncode == 0
    p = cli(srv, "kv", "get", store, "greeting")
    assert p.returncode == 1 and b"not_found" in p.stderr and p.stdout == b""
    p = cli(srv, "kv", "rm", store, "greeting")
    assert p.returncode == 1


def test_cli_ls_follows_every_page(srv):
    store = unique("clipages")
    r = batch(srv, store, {"ops": [{"op": "put", "key": f"k{i:04d}", "value": "v"}
                                   for i in range(100)]})
    assert r.status_code == 200
    for j in range(1, 11):
        r = batch(srv, store, {"ops": [{"op": "put", "key": f"k{j}{i:04d}", "value": "v"}
                                       for i in range(100)]})
        assert r.status_code == 200
    p = cli(srv, "kv", "ls", store)
    assert p.returncode == 0
    assert len(p.stdout.decode().splitlines()) == 1 + 1100


@pytest.mark.parametrize("args", [
    ["kv"], ["kv", "fetch", "s", "k"], ["kv", "get", "s"], ["kv", "get", "s", "k", "extra"],
    ["kv", "put", "s", "k", "v", "--ttl", "0"], ["kv", "rm", "s", "k", "--if-version", "x"],
    ["kv", "get", "s", "k", "--ttl", "5"], ["kv", "ls", "s", "--if-version", "1"],
])
def test_cli_usage_errors_exit_2(srv, args):
    p = cli(srv, *args)
    assert p.returncode == 2, (args, p.stdout, p.stderr)
    assert b"usage: mayfly kv" in p.stderr


def test_cli_help(srv):
    p = cli(srv, "kv", "--help")
    assert p.returncode == 0 and b"mayfly kv put STORE KEY" in p.stdout


# ---------------------------------------------------------------- durability


def test_acknowledged_writes_survive_kill_9(server):
    srv = server()
    acked, stop = {}, threading.Event()
    lock = threading.Lock()

    def writer(t):
        s = requests.Session()
        i = 0
        while not stop.is_set():
            key, value = f"w{t}-{i}", f"value {t} {i}".encode()
            try:
                r = s.put(kv_url(srv, "durable", key), data=value, timeout=60)
            except requests.RequestException:
                return
            if r.status_code == 200:
                with lock:
                    acked[key] = value
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    wait_for("writes to be acknowledged", lambda: len(acked) >= 500)
    # Killed in the middle of the stream: no chance to flush anything.
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait(60)
    stop.set()
    for t in threads:
        t.join()
    srv.start()
    with lock:
        snapshot = dict(acked)
    missing = [k for k, v in snapshot.items() if get(srv, "durable", k).content != v]
    assert not missing, f"{len(missing)} of {len(snapshot)} acknowledged writes lost: {missing[:5]}"
    # The counts agree with what is there.
    listed = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        doc = requests.get(kv_url(srv, "durable"), params=params, timeout=60).json()
        listed += doc["keys"]
        cursor = doc["next"]
        if not cursor:
            break
    assert stats(srv, "durable")["keys"] == len(listed) >= len(snapshot)
