"""The function registry over HTTP: create, update, get, list, delete, the
defaults a user gets, runtime aliases, code packages on disk, and that all
of it survives a restart."""

import re

import pytest
import requests

from conftest import assert_error, b64, fn_body, make_zip, py_zip, sha256_hex

ASYNC_DEFAULTS = {
    "max_retries": 2,
    "max_event_age_s": 21600,
    "on_success": None,
    "on_failure": None,
}


def put(srv, name, body):
    return requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=30)


def get(srv, name):
    return requests.get(f"{srv.url}/v1/functions/{name}", timeout=30)


def delete(srv, name):
    return requests.delete(f"{srv.url}/v1/functions/{name}", timeout=30)


def listing(srv):
    r = requests.get(f"{srv.url}/v1/functions", timeout=30)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert isinstance(doc, dict) and isinstance(doc.get("functions"), list), doc
    return {f["name"]: f for f in doc["functions"]}


def test_create_returns_201_and_the_defaults(shared_server):
    code = py_zip()
    r = put(shared_server, "create-defaults", fn_body(code))
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    fn = r.json()
    assert fn["name"] == "create-defaults"
    assert fn["runtime"] == "python3"
    assert fn["handler"] == "app.handler"
    assert fn["memory_mb"] == 128
    assert fn["timeout_s"] == 3
    assert fn["max_concurrency"] == 10
    assert fn["tmp_mb"] == 64
    assert fn["env"] == {}
    assert fn["async"] == ASYNC_DEFAULTS
    assert fn["version"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", fn["code_sha256"]), fn["code_sha256"]
    # The digest is the zip's, so a user can check what the server holds.
    assert fn["code_sha256"] == sha256_hex(code)
    assert fn.get("created") is not None and fn.get("updated") is not None, fn
    assert shared_server.code_dir(fn["code_sha256"]).is_dir()


def test_create_keeps_every_given_setting(shared_server):
    body = fn_body(
        memory_mb=512,
        timeout_s=30,
        max_concurrency=3,
        tmp_mb=128,
        env={"GREETING": "hi", "EMPTY": ""},
        **{"async": {"max_retries": 0, "max_event_age_s": 60}},
    )
    r = put(shared_server, "create-settings", body)
    assert r.status_code == 201, r.text
    fn = r.json()
    assert (fn["memory_mb"], fn["timeout_s"], fn["max_concurrency"], fn["tmp_mb"]) == (
        512,
        30,
        3,
        128,
    )
    assert fn["env"] == {"GREETING": "hi", "EMPTY": ""}
    assert fn["async"]["max_retries"] == 0
    assert fn["async"]["max_event_age_s"] == 60


def test_update_returns_200_and_keeps_what_was_left_out(shared_server):
    first = put(shared_server, "upd", fn_body(env={"A": "1"}, memory_mb=256))
    assert first.status_code == 201, first.text
    before = first.json()

    r = put(shared_server, "upd", {"timeout_s": 10})
    assert r.status_code == 200, r.text
    fn = r.json()
    assert fn["version"] == 2
    assert fn["timeout_s"] == 10
    for kept in ("runtime", "handler", "memory_mb", "env", "code_sha256", "max_concurrency",
                 "tmp_mb", "async", "created"):
        assert fn[kept] == before[kept], kept

    r = put(shared_server, "upd", {"code": {"zip_base64": b64(py_zip({"more.py": "x = 1\n"}))}})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3
    assert r.json()["code_sha256"] != before["code_sha256"]
    assert r.json()["timeout_s"] == 10


def test_get_returns_the_function(shared_server):
    created = put(shared_server, "getme", fn_body(env={"K": "V"})).json()
    r = get(shared_server, "getme")
    assert r.status_code == 200, r.text
    got = r.json()
    # GET adds the state of the function's async queue.
    # The queue's own limit its first events would meet: 4 (below the
    # default max_concurrency of 10; docs/async.md).
    assert got.pop("async_queue") == {"depth": 0, "running": 0, "limit": 4,
                                      "oldest_age_s": 0.0, "dead_letters": 0, "enqueued": 0,
                                      "attempts": 0, "retries": 0}
    assert got == created


def test_list_returns_every_function(shared_server):
    for name in ("list-a", "list-b"):
        assert put(shared_server, name, fn_body()).status_code == 201
    fns = listing(shared_server)
    assert {"list-a", "list-b"} <= set(fns)
    assert fns["list-a"]["runtime"] == "python3"
    assert fns["list-a"]["version"] == 1


def test_delete_returns_204_and_the_function_is_gone(shared_server):
    assert put(shared_server, "delme", fn_body()).status_code == 201
    r = delete(shared_server, "delme")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_error(get(shared_server, "delme"), 404, "not_found", "delme")
    assert "delme" not in listing(shared_server)


@pytest.mark.parametrize(
    "alias,canonical,handler,code",
    [
        ("python3.12", "python3", "app.handler", {"app.py": "def handler(e, c):\n    return e\n"}),
        ("python3.9", "python3", "app.handler", {"app.py": "def handler(e, c):\n    return e\n"}),
        ("nodejs20.x", "nodejs", "index.handler",
         {"index.js": "exports.handler = async (e) => e;\n"}),
        ("nodejs", "nodejs", "index.handler", {"index.js": "exports.handler = async (e) => e;\n"}),
        ("provided.al2023", "provided", None, {"bootstrap": "#!/bin/sh\n"}),
        ("provided.al2", "provided", None, {"bootstrap": "#!/bin/sh\n"}),
    ],
)
def test_runtime_aliases_are_stored_canonical(shared_server, alias, canonical, handler, code):
    name = "alias-" + re.sub(r"[^a-z0-9]", "-", alias)
    body = fn_body(make_zip(code), runtime=alias, handler=handler)
    r = put(shared_server, name, body)
    assert r.status_code == 201, r.text
    assert r.json()["runtime"] == canonical
    assert get(shared_server, name).json()["runtime"] == canonical


def test_new_code_removes_the_old_unreferenced_package(shared_server):
    old_zip, new_zip = py_zip({"v.txt": "one"}), py_zip({"v.txt": "two"})
    old = put(shared_server, "pkg-swap", fn_body(old_zip)).json()["code_sha256"]
    assert shared_server.code_dir(old).is_dir()

    r = put(shared_server, "pkg-swap", {"code": {"zip_base64": b64(new_zip)}})
    assert r.status_code == 200, r.text
    new = r.json()["code_sha256"]
    assert new == sha256_hex(new_zip)
    assert shared_server.code_dir(new).is_dir()
    assert (shared_server.code_dir(new) / "v.txt").read_text() == "two"
    assert not shared_server.code_dir(old).exists(), "the old package is still on disk"


def test_a_put_refused_before_it_is_made_lets_replaced_packages_go(server):
    """A put refused on its way in (here it mounts a volume that does not
    exist) ends its upload like any other: the package a later update
    replaces still leaves the disk. (Such a put used to stay counted as an
    upload in flight, which keeps every package no function uses.)"""
    srv = server()
    old = put(srv, "pkg-refused", fn_body(py_zip({"v.txt": "one"}))).json()["code_sha256"]
    r = put(srv, "pkg-refused", {"volumes": [{"name": "no-such-volume", "path": "/mnt/x"}]})
    assert r.status_code == 400, r.text
    r = put(srv, "pkg-refused", {"code": {"zip_base64": b64(py_zip({"v.txt": "two"}))}})
    assert r.status_code == 200, r.text
    assert not srv.code_dir(old).exists(), "the replaced package is still on disk"


def test_a_package_another_function_uses_is_kept(shared_server):
    shared_zip = py_zip({"shared.txt": "both"})
    sha = put(shared_server, "share-1", fn_body(shared_zip)).json()["code_sha256"]
    assert put(shared_server, "share-2", fn_body(shared_zip)).json()["code_sha256"] == sha

    r = put(shared_server, "share-1", {"code": {"zip_base64": b64(py_zip({"own.txt": "1"}))}})
    assert r.status_code == 200, r.text
    assert shared_server.code_dir(sha).is_dir(), "a package still in use was removed"

    assert delete(shared_server, "share-2").status_code == 204
    assert not shared_server.code_dir(sha).exists(), "deleting the last user left the package"


def test_functions_survive_a_restart(server):
    srv = server()
    a = put(srv, "durable", fn_body(env={"X": "y"}, memory_mb=1024)).json()
    put(srv, "durable", {"timeout_s": 7})
    b = get(srv, "durable").json()
    assert b["version"] == 2
    assert put(srv, "gone", fn_body()).status_code == 201
    assert delete(srv, "gone").status_code == 204

    srv.restart()

    after = get(srv, "durable")
    assert after.status_code == 200, after.text
    assert after.json() == b
    assert after.json()["code_sha256"] == a["code_sha256"]
    assert srv.code_dir(a["code_sha256"]).is_dir()
    assert set(listing(srv)) == {"durable"}
    assert_error(get(srv, "gone"), 404, "not_found", "gone")
    # And it keeps counting versions where it left off.
    r = put(srv, "durable", {"timeout_s": 8})
    assert r.status_code == 200 and r.json()["version"] == 3, r.text
