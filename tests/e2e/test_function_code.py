"""A function's code read back (GET /v1/functions/{name}/code and
…/code/files; `mayfly get NAME --files` and `--code-out FILE`): a folder
deployed with nested files, an executable, an empty folder and a symlink
is listed page by page and downloaded as a zip that holds the same files,
modes and symlink; the zip deploys again to the same files. On SQLite the
server zips the unpacked files again (a weak ETag); on PostgreSQL, which
keeps the uploaded zip, it is that zip byte for byte. A client holding the
package gets 304; an unknown function 404; bad paging parameters 400
naming the parameter; another tenant's function is absent."""

import hashlib
import io
import json
import os
import stat
import zipfile

import pytest
import requests

from conftest import (assert_error, database, deploy, make_zip, run_cli, symlink, unique,
                      executable)

APP = "def handler(event, context):\n    return {'ok': True}\n"


def write_folder(root):
    """The folder a user deploys: nested files, an executable, an empty
    folder and a symlink. Returns {path: (type, mode, bytes or target)}
    of what the package should hold."""
    root.mkdir(parents=True)
    files = {
        "app.py": APP.encode(),
        "lib/util.py": b"X = 1\n",
        "lib/deep/data.json": json.dumps({"k": list(range(50))}).encode(),
        "bin/run.sh": b"#!/bin/sh\necho hi\n",
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "bin/run.sh").chmod(0o755)
    (root / "empty").mkdir()
    os.symlink("lib/deep/data.json", root / "data-link.json")
    want = {}
    for rel, data in files.items():
        want[rel] = ("file", 0o755 if rel == "bin/run.sh" else 0o644, data)
    for d in ("lib", "lib/deep", "bin", "empty"):
        want[d] = ("dir", 0o755, None)
    want["data-link.json"] = ("symlink", 0o777, "lib/deep/data.json")
    return want


def list_files(srv, name, limit=None, headers=None):
    """Every entry, following next page by page; (entries, pages)."""
    out, pages, after = [], [], None
    while True:
        params = {}
        if limit is not None:
            params["limit"] = limit
        if after is not None:
            params["after"] = after
        r = requests.get(f"{srv.url}/v1/functions/{name}/code/files", params=params,
                         headers=headers or {}, timeout=60)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page)
        out += page["files"]
        after = page["next"]
        if after is None:
            return out, pages


def as_tree(entries):
    """The listing as {path: (type, mode, size, target)}."""
    return {e["path"]: (e["type"], int(e["mode"], 8), e["size"], e.get("target"))
            for e in entries}


def expected_listing(want):
    out = {}
    for path, (kind, mode, data) in want.items():
        if kind == "file":
            out[path] = (kind, mode, len(data), None)
        elif kind == "dir":
            out[path] = (kind, mode, 0, None)
        else:
            out[path] = (kind, mode, len(data), data)
    return out


def zip_tree(data):
    """A zip's entries as {path: (type, mode, bytes or target)}."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            mode = info.external_attr >> 16
            path = info.filename.rstrip("/")
            if stat.S_ISLNK(mode):
                out[path] = ("symlink", 0o777, z.read(info).decode())
            elif info.filename.endswith("/") or stat.S_ISDIR(mode):
                out[path] = ("dir", stat.S_IMODE(mode), None)
            else:
                out[path] = ("file", stat.S_IMODE(mode), z.read(info))
    return out


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


@pytest.fixture(scope="module")
def deployed(srv, tmp_path_factory):
    """A function deployed from a folder by the CLI: (name, want, fn)."""
    folder = tmp_path_factory.mktemp("src") / "fn"
    want = write_folder(folder)
    name = unique("code")
    out = run_cli(srv.url, "deploy", name, folder, "--runtime", "python3", "--handler",
                  "app.handler")
    assert out.returncode == 0, out.stderr
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()
    return name, want, fn


def test_the_file_list_pages_through_what_was_deployed(srv, deployed):
    name, want, fn = deployed
    entries, pages = list_files(srv, name, limit=3)
    assert as_tree(entries) == expected_listing(want)
    paths = [e["path"] for e in entries]
    assert paths == sorted(paths, key=lambda p: p.encode())
    assert len(pages) == (len(want) + 2) // 3
    assert all(len(p["files"]) == 3 for p in pages[:-1])
    assert {p["total"] for p in pages} == {len(want)}
    assert {p["code_sha256"] for p in pages} == {fn["code_sha256"]}
    # One page holds everything by default.
    whole, pages = list_files(srv, name)
    assert len(pages) == 1 and whole == entries


def test_the_download_holds_the_deployed_files_and_deploys_again(srv, deployed):
    name, want, fn = deployed
    r = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers["Content-Disposition"] == f'attachment; filename="{name}.zip"'
    # SQLite keeps no copy of the uploaded zip: the unpacked files zipped
    # again, whose bytes are not the upload's, so the tag is weak.
    assert r.headers["ETag"] == f'W/"{fn["code_sha256"]}"'
    assert r.headers["X-Mayfly-Code-Source"] == "unpacked"
    assert zip_tree(r.content) == want
    # The same files always give the same bytes.
    again = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60)
    assert again.content == r.content

    copy = unique("code-copy")
    deploy(srv, copy, r.content)
    listed, _ = list_files(srv, copy)
    assert as_tree(listed) == expected_listing(want)
    call = requests.post(f"{srv.url}/v1/functions/{copy}/invoke", json={}, timeout=120)
    assert call.status_code == 200 and call.json() == {"ok": True}, call.text


def test_a_client_holding_the_package_gets_304(srv, deployed):
    name, _, fn = deployed
    sha = fn["code_sha256"]
    url = f"{srv.url}/v1/functions/{name}/code"
    for tag in (f'"{sha}"', f'W/"{sha}"', f'"other", "{sha}"'):
        r = requests.get(url, headers={"If-None-Match": tag}, timeout=60)
        assert r.status_code == 304, (tag, r.status_code)
        assert r.content == b""
        assert r.headers["ETag"] == f'W/"{sha}"'
    r = requests.get(url, headers={"If-None-Match": '"' + "0" * 64 + '"'}, timeout=60)
    assert r.status_code == 200 and r.content


def test_an_update_shows_the_new_package(srv):
    name = unique("code-upd")
    deploy(srv, name, {"app.py": APP})
    first = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60)
    deploy(srv, name, {"app.py": APP, "extra.txt": "more"})
    entries, _ = list_files(srv, name)
    assert [e["path"] for e in entries] == ["app.py", "extra.txt"]
    r = requests.get(f"{srv.url}/v1/functions/{name}/code",
                     headers={"If-None-Match": first.headers["ETag"]}, timeout=60)
    assert r.status_code == 200
    assert zip_tree(r.content)["extra.txt"] == ("file", 0o644, b"more")


def test_a_large_package_pages_at_the_default_and_the_maximum(srv):
    name = unique("code-big")
    files = {"app.py": APP}
    files.update({f"d/f{i:04d}.txt": f"{i}" for i in range(1100)})
    deploy(srv, name, files)
    entries, pages = list_files(srv, name)
    assert [len(p["files"]) for p in pages] == [100] * 11 + [2]
    assert len(entries) == 1102 and pages[0]["total"] == 1102
    entries, pages = list_files(srv, name, limit=1000)
    assert [len(p["files"]) for p in pages] == [1000, 102]
    r = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60)
    assert len(zip_tree(r.content)) == 1102


def test_symlinks_and_modes_the_zip_carried(srv):
    name = unique("code-zip")
    deploy(srv, name, make_zip({
        "app.py": APP,
        "tool": executable(b"\x7fELF-ish"),
        "pkg/": b"",
        "pkg/mod.py": "",
        "alias": symlink("pkg/mod.py"),
        "ünïcode.txt": "x",
    }))
    tree = as_tree(list_files(srv, name)[0])
    assert tree["tool"] == ("file", 0o755, 8, None)
    assert tree["alias"] == ("symlink", 0o777, 10, "pkg/mod.py")
    assert tree["pkg"] == ("dir", 0o755, 0, None)
    assert tree["pkg/mod.py"] == ("file", 0o644, 0, None)
    assert tree["ünïcode.txt"] == ("file", 0o644, 1, None)


def test_unknown_functions_are_404(srv):
    for suffix in ("/code", "/code/files"):
        r = requests.get(f"{srv.url}/v1/functions/{unique('nope')}{suffix}", timeout=60)
        assert_error(r, 404, "not_found", "does not exist")
        r = requests.get(f"{srv.url}/v1/functions/bad.name{suffix}", timeout=60)
        assert_error(r, 400, "bad_request", "name")


@pytest.mark.parametrize("query, param", [
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=abc", "limit"),
    ("limit=-1", "limit"),
    ("limit=", "limit"),
    ("after=app.py", "after"),
    ("after=p.", "after"),
    ("after=p.AA", "after"),        # a NUL
    ("after=p.Ymlu%3D", "after"),   # padded
    ("after=p.Ymlv", None),         # a cursor of another path is fine
])
def test_bad_paging_parameters_name_the_parameter(srv, deployed, query, param):
    name = deployed[0]
    r = requests.get(f"{srv.url}/v1/functions/{name}/code/files?{query}", timeout=60)
    if param is None:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, 400, "bad_request", param)


def test_cli_lists_and_saves_the_package(srv, deployed, tmp_path):
    name, want, fn = deployed
    out = run_cli(srv.url, "get", name, "--files")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["MODE", "TYPE", "SIZE", "PATH"]
    rows = {}
    for line in lines[1:]:
        mode, kind, size, path = line.split(None, 3)
        rows[path] = (mode, kind, size)
    assert rows["bin/run.sh"] == ("0755", "file", str(len(want["bin/run.sh"][2])))
    assert rows["data-link.json -> lib/deep/data.json"] == ("0777", "symlink", "18")
    assert rows["empty"] == ("0755", "dir", "0")
    assert len(rows) == len(want)

    target = tmp_path / "pkg.zip"
    out = run_cli(srv.url, "get", name, "--code-out", target)
    assert out.returncode == 0, out.stderr
    assert fn["code_sha256"] in out.stdout and str(target) in out.stdout
    body = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60).content
    assert target.read_bytes() == body
    assert zip_tree(body) == want

    out = run_cli(srv.url, "get", unique("nope"), "--files")
    assert out.returncode == 1 and "does not exist" in out.stderr
    out = run_cli(srv.url, "get", unique("nope"), "--code-out", tmp_path / "x.zip")
    assert out.returncode == 1 and "does not exist" in out.stderr
    assert not (tmp_path / "x.zip").exists()
    out = run_cli(srv.url, "get", name, "--files", "--code-out", target)
    assert out.returncode == 2 and "one at a time" in out.stderr


KEYS = {
    "admin": ("AKIACODEADMIN000001", "admin-secret", "default", "admin"),
    "a": ("AKIACODEA0000000001", "a-secret", "team-a", "developer"),
    "b": ("AKIACODEB0000000001", "b-secret", "team-b", "developer"),
    "a-viewer": ("AKIACODEAVIEW00001", "av-secret", "team-a", "viewer"),
}


def auth(who):
    key_id, secret, _, _ = KEYS[who]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


def test_another_tenants_package_is_absent(server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    srv = server("--keys", keys)
    name = unique("code-t")
    body = {"runtime": "python3", "handler": "app.handler",
            "code": {"zip_base64": __import__("base64").b64encode(
                make_zip({"app.py": APP, "secret.txt": "team-a's"})).decode()}}
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=auth("a"), timeout=60)
    assert r.status_code == 201, r.text

    for suffix in ("/code", "/code/files"):
        url = f"{srv.url}/v1/functions/{name}{suffix}"
        assert requests.get(url, headers=auth("a"), timeout=60).status_code == 200
        assert requests.get(url, headers=auth("a-viewer"), timeout=60).status_code == 200
        r = requests.get(url, headers=auth("b"), timeout=60)
        assert_error(r, 404, "not_found", "does not exist")
        assert "team-a" not in r.text
        assert requests.get(url, timeout=60).status_code == 401
        # The admin reaches it in the tenant it names, and only there.
        assert requests.get(url, headers=auth("admin"), timeout=60).status_code == 404
        r = requests.get(url, headers={**auth("admin"), "X-Mayfly-Tenant": "team-a"}, timeout=60)
        assert r.status_code == 200
    r = requests.get(f"{srv.url}/v1/functions/{name}/code",
                     headers={**auth("admin"), "X-Mayfly-Tenant": "team-a"}, timeout=60)
    assert zip_tree(r.content)["secret.txt"] == ("file", 0o644, b"team-a's")


def test_on_postgresql_the_download_is_the_uploaded_zip(pg, server):
    url = database(pg, "mayfly_code_read")
    srv = server("--store", url, "--sandbox-pool", "0", "--zygotes", "0")
    name = unique("code-pg")
    upload = make_zip({"app.py": APP, "lib/x.py": "X = 2\n", "run": executable(b"#!/bin/sh\n"),
                       "ln": symlink("lib/x.py")})
    fn = deploy(srv, name, upload)
    assert fn["code_sha256"] == hashlib.sha256(upload).hexdigest()
    r = requests.get(f"{srv.url}/v1/functions/{name}/code", timeout=60)
    assert r.status_code == 200
    assert r.content == upload
    assert r.headers["ETag"] == f'"{fn["code_sha256"]}"'
    assert r.headers["X-Mayfly-Code-Source"] == "uploaded"
    r = requests.get(f"{srv.url}/v1/functions/{name}/code",
                     headers={"If-None-Match": f'"{fn["code_sha256"]}"'}, timeout=60)
    assert r.status_code == 304 and r.headers["ETag"] == f'"{fn["code_sha256"]}"'
    tree = as_tree(list_files(srv, name, limit=2)[0])
    assert tree == {"app.py": ("file", 0o644, len(APP), None),
                    "lib": ("dir", 0o755, 0, None),
                    "lib/x.py": ("file", 0o644, 6, None),
                    "run": ("file", 0o755, 10, None),
                    "ln": ("symlink", 0o777, 8, "lib/x.py")}

    # A second server sharing the store, whose data directory starts
    # empty, serves the same bytes and lists the same files.
    other = server("--store", url, "--sandbox-pool", "0", "--zygotes", "0")
    r = requests.get(f"{other.url}/v1/functions/{name}/code", timeout=60)
    assert r.content == upload
    assert as_tree(list_files(other, name)[0]) == tree
