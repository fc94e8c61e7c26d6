"""Bad input to PUT /v1/functions/{name}: every bad field gets a 400 whose
message names the field, hostile zips are refused naming the entry, and
the package bounds answer 413."""

import base64
import os

import pytest
import requests

from conftest import (
    assert_error,
    executable,
    fn_body,
    make_zip,
    raw_request,
    symlink,
)


def put(srv, name, body=None, data=None):
    kwargs = {"json": body} if data is None else {"data": data}
    return requests.put(f"{srv.url}/v1/functions/{name}", timeout=120, **kwargs)


NOT_A_ZIP = base64.b64encode(b"hello, I am not a zip file at all").decode()

# (case id, body overrides, what the message must mention)
BAD_FIELDS = [
    ("runtime-unknown", {"runtime": "cobol"}, "runtime"),
    ("runtime-not-string", {"runtime": 3}, "runtime"),
    ("runtime-missing", {"runtime": None}, "runtime"),
    ("handler-missing-python", {"handler": None}, "handler"),
    ("memory-127", {"memory_mb": 127}, "memory_mb"),
    ("memory-10241", {"memory_mb": 10241}, "memory_mb"),
    ("memory-string", {"memory_mb": "256"}, "memory_mb"),
    ("memory-float", {"memory_mb": 1.5}, "memory_mb"),
    ("timeout-0", {"timeout_s": 0}, "timeout_s"),
    ("timeout-901", {"timeout_s": 901}, "timeout_s"),
    ("max-concurrency-negative", {"max_concurrency": -1}, "max_concurrency"),
    ("tmp-mb-15", {"tmp_mb": 15}, "tmp_mb"),
    ("env-not-object", {"env": ["A=1"]}, "env"),
    ("env-non-string-value", {"env": {"A": 1}}, "env"),
    ("env-reserved-key", {"env": {"AWS_REGION": "eu-west-1"}}, "AWS_REGION"),
    ("env-key-with-equals", {"env": {"A=B": "x"}}, "env"),
    ("env-empty-key", {"env": {"": "x"}}, "env"),
    ("async-max-retries-3", {"async": {"max_retries": 3}}, "max_retries"),
    ("async-max-event-age-59", {"async": {"max_event_age_s": 59}}, "max_event_age_s"),
    ("async-unknown-field", {"async": {"retries": 1}}, "retries"),
    ("unknown-field", {"colour": "blue"}, "colour"),
    ("code-missing", {"code": None}, "code"),
    ("code-not-object", {"code": "UEsDBA=="}, "code"),
    ("code-invalid-base64", {"code": {"zip_base64": "!!!not base64!!!"}},
     ("zip_base64", "base64", "code")),
    ("code-not-a-zip", {"code": {"zip_base64": NOT_A_ZIP}}, "zip"),
]


@pytest.mark.parametrize("case,overrides,mention", BAD_FIELDS, ids=[c[0] for c in BAD_FIELDS])
def test_bad_field_is_400_naming_the_field(shared_server, case, overrides, mention):
    body = fn_body()
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    r = put(shared_server, "bad-" + case, body)
    assert_error(r, 400, "bad_request", mention)
    # Nothing was created by a refused request.
    assert requests.get(f"{shared_server.url}/v1/functions/bad-{case}").status_code == 404


@pytest.mark.parametrize("name", ["bad.name", "b@d", "a" * 65])
def test_bad_name_is_400(shared_server, name):
    assert_error(put(shared_server, name, fn_body()), 400, "bad_request", "name")


def test_a_64_character_name_is_fine(shared_server):
    r = put(shared_server, "a" * 64, fn_body())
    assert r.status_code == 201, r.text


def test_bad_field_on_update_is_400_and_changes_nothing(shared_server):
    assert put(shared_server, "upd-bad", fn_body()).status_code == 201
    assert_error(put(shared_server, "upd-bad", {"memory_mb": 99999}), 400, "bad_request",
                 "memory_mb")
    fn = requests.get(f"{shared_server.url}/v1/functions/upd-bad").json()
    assert fn["memory_mb"] == 128 and fn["version"] == 1


def test_malformed_json_is_400(shared_server):
    r = put(shared_server, "malformed", data=b'{"runtime": "python3",')
    assert_error(r, 400, "bad_request", "json")


@pytest.mark.parametrize("body", [b"[1, 2]", b'"python3"', b"42", b"null"])
def test_non_object_body_is_400(shared_server, body):
    r = put(shared_server, "not-object", data=body)
    # Valid JSON, but not a settings object: the message says what is expected.
    assert_error(r, 400, "bad_request", ("object", "{"))


def test_empty_body_is_400(shared_server):
    assert_error(put(shared_server, "empty-body", data=b""), 400, "bad_request")


# ---------------------------------------------------------------- hostile zips

HOSTILE = [
    ("dotdot", {"app.py": "x", "../x": "escape"}, "../x"),
    ("dotdot-inside", {"app.py": "x", "lib/../../y": "escape"}, "lib/../../y"),
    ("absolute", {"app.py": "x", "/abs/x": "escape"}, "/abs/x"),
    ("symlink-out", {"app.py": "x", "evil": symlink("../../../etc/passwd")}, "evil"),
    ("symlink-absolute", {"app.py": "x", "evil-abs": symlink("/etc/passwd")}, "evil-abs"),
    ("symlink-out-from-subdir", {"app.py": "x", "sub/evil": symlink("../../x")}, "sub/evil"),
]


@pytest.mark.parametrize("case,entries,entry", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_zip_is_400_naming_the_entry(shared_server, case, entries, entry):
    r = put(shared_server, "hostile-" + case, fn_body(make_zip(entries)))
    assert_error(r, 400, "bad_request", entry)
    assert requests.get(f"{shared_server.url}/v1/functions/hostile-{case}").status_code == 404
    escaped = [p for p in shared_server.workdir.rglob("*")
               if p.name in ("x", "y") and p.is_file() and p.read_bytes() == b"escape"]
    assert escaped == [], "an entry was written outside its package"


def test_symlinks_inside_the_package_and_exec_bits_are_kept(shared_server):
    code = make_zip({
        "app.py": "def handler(e, c):\n    return e\n",
        "lib/": b"",
        "lib/app-link.py": symlink("../app.py"),
        "bin/tool": executable("#!/bin/sh\necho tool\n"),
    })
    r = put(shared_server, "friendly-links", fn_body(code))
    assert r.status_code == 201, r.text
    root = shared_server.code_dir(r.json()["code_sha256"])
    link = root / "lib" / "app-link.py"
    assert link.is_symlink() and os.readlink(link) == "../app.py"
    assert os.stat(root / "bin" / "tool").st_mode & 0o111 == 0o111
    assert os.stat(root / "app.py").st_mode & 0o111 == 0


# ---------------------------------------------------------------- bounds


@pytest.fixture(scope="module")
def limited_server(module_server_factory):
    return module_server_factory("--max-unzipped-mb", "5", "--max-files", "20",
                                 "--max-zip-mb", "1")


def test_zip_bomb_is_413(limited_server):
    bomb = make_zip({"app.py": "x", "zeros.bin": bytes(30 << 20)})
    assert len(bomb) < 200_000, "the bomb should be small compressed"
    r = put(limited_server, "bomb", fn_body(bomb))
    assert_error(r, 413, "payload_too_large",
                 ("unzipped", "uncompressed", "unpacked", "expand", "size", "MiB", "limit"))
    assert requests.get(f"{limited_server.url}/v1/functions/bomb").status_code == 404
    leftovers = [p for p in limited_server.code_dir().glob("**/zeros.bin")]
    assert leftovers == [], "a refused package left files behind"


def test_too_many_files_is_413(limited_server):
    many = make_zip({f"f{i:02d}.txt": "x" for i in range(30)})
    r = put(limited_server, "many", fn_body(many))
    assert_error(r, 413, "payload_too_large", ("files", "entries"))


def test_a_package_within_the_bounds_is_accepted(limited_server):
    ok = make_zip({f"f{i:02d}.py": "x = 1\n" for i in range(19)} | {"app.py": "x"})
    r = put(limited_server, "within", fn_body(ok))
    assert r.status_code == 201, r.text


def test_zip_over_max_zip_mb_is_413(limited_server):
    # Random bytes do not compress: the zip itself is ~1.5 MiB.
    big = make_zip({"app.py": "x", "noise.bin": os.urandom(3 << 19)})
    assert len(big) > (3 << 19)
    body = (
        b'{"runtime":"python3","handler":"app.handler","code":{"zip_base64":"'
        + base64.b64encode(big)
        + b'"}}'
    )
    r = raw_request(limited_server.port, "PUT", "/v1/functions/too-big", body,
                    {"Content-Type": "application/json"})
    assert_error(r, 413, "payload_too_large", ("zip", "body", "large", "MiB", "limit"))
    assert requests.get(f"{limited_server.url}/v1/functions/too-big").status_code == 404


def test_zip_just_under_max_zip_mb_is_accepted(limited_server):
    # The body limit must leave room for base64 (4/3) and the JSON around it.
    zip_bytes = make_zip({"app.py": "x", "noise.bin": os.urandom(900 << 10)})
    assert len(zip_bytes) < (1 << 20)
    r = put(limited_server, "just-under", fn_body(zip_bytes))
    assert r.status_code == 201, r.text


# ---------------------------------------------------------------- unknown


def test_get_unknown_function_is_404(shared_server):
    r = requests.get(f"{shared_server.url}/v1/functions/no-such-fn", timeout=30)
    assert_error(r, 404, "not_found", "no-such-fn")


def test_delete_unknown_function_is_404(shared_server):
    r = requests.delete(f"{shared_server.url}/v1/functions/no-such-fn", timeout=30)
    assert_error(r, 404, "not_found", "no-such-fn")


def test_delete_twice_is_404_the_second_time(shared_server):
    assert put(shared_server, "twice", fn_body()).status_code == 201
    assert requests.delete(f"{shared_server.url}/v1/functions/twice").status_code == 204
    r = requests.delete(f"{shared_server.url}/v1/functions/twice", timeout=30)
    assert_error(r, 404, "not_found", "twice")
