"""The web console's files, served at /console/ by the server (docs/console.md):
built into the binary from console/, with their content types, ETags and a
strict Content-Security-Policy on every answer; nothing but the files in
console/ is ever served, whatever path is asked for; `--console-dir DIR`
serves a folder's files instead, with the same refusals."""

import hashlib
import subprocess

import pytest
import requests

from conftest import MAYFLY_BIN, REPO, RawConn, assert_error, raw_request

CONSOLE = REPO / "console"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}

# Paths that name something outside the console's files, or a file the
# build leaves out: each is answered as a file that is not there (or refused
# as a bad path), and never with the bytes of anything outside console/.
ESCAPES = [
    "/console/../etc/passwd",
    "/console/..%2f..%2fetc%2fpasswd",
    "/console/%2e%2e/%2e%2e/etc/passwd",
    "/console/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/console/js/../../../etc/passwd",
    "/console/./index.html",
    "/console//etc/passwd",
    "/console/%2fetc%2fpasswd",
    "/console/..\\..\\etc\\passwd",
    "/console/..%5c..%5cetc%5cpasswd",
    "/console/index.html%00.png",
    "/console/.hidden",
    "/console/%252e%252e/etc/passwd",
    "/console/....//....//etc/passwd",
]


def repo_files():
    """The files the build embeds: every file under console/ but hidden ones."""
    return sorted(p for p in CONSOLE.rglob("*")
                  if p.is_file() and not any(part.startswith(".")
                                             for part in p.relative_to(CONSOLE).parts))


def check_security_headers(r):
    assert r.headers.get("content-security-policy") == CSP, r.headers
    assert r.headers.get("x-content-type-options") == "nosniff"
    assert r.headers.get("referrer-policy") == "no-referrer"


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    # With access keys: the console's pages need none to load.
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text("AKCONSOLE secret-console\n")
    return module_server_factory("--keys", keys)


def test_index_served_with_headers_and_no_key(srv):
    r = requests.get(f"{srv.url}/console/", timeout=60)
    assert r.status_code == 200, r.text
    assert r.content == (CONSOLE / "index.html").read_bytes()
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    digest = hashlib.sha256(r.content).hexdigest()
    assert r.headers["etag"] == f'"{digest[:32]}"'
    check_security_headers(r)
    # The same file by its name.
    named = requests.get(f"{srv.url}/console/index.html", timeout=60)
    assert named.status_code == 200 and named.content == r.content
    # /v1 still asks for the key the console's pages send.
    assert requests.get(f"{srv.url}/v1/functions", timeout=60).status_code == 401


def test_bare_console_redirects(srv):
    r = requests.get(f"{srv.url}/console", allow_redirects=False, timeout=60)
    assert r.status_code == 301
    assert r.headers["location"] == "/console/"
    check_security_headers(r)


def test_the_binary_serves_every_file_in_console(srv):
    """What the build embeds is what console/ holds: each file, byte for
    byte, with its type and an ETag of its content."""
    files = repo_files()
    assert files, "console/ holds no files"
    for p in files:
        rel = p.relative_to(CONSOLE).as_posix()
        r = requests.get(f"{srv.url}/console/{rel}", timeout=60)
        assert r.status_code == 200, (rel, r.text)
        data = p.read_bytes()
        assert r.content == data, f"{rel}: the binary's copy differs from console/ (rebuild?)"
        assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()[:32]}"', rel
        want = TYPES.get(p.suffix.lower())
        if want:
            assert r.headers["content-type"] == want, rel
        check_security_headers(r)


def test_an_asset_other_than_the_index(srv):
    others = [p for p in repo_files() if p.name != "index.html"]
    if not others:
        pytest.skip("console/ holds only its index")
    p = others[0]
    rel = p.relative_to(CONSOLE).as_posix()
    r = requests.get(f"{srv.url}/console/{rel}?v=1", timeout=60)
    assert r.status_code == 200 and r.content == p.read_bytes()
    assert r.headers["cache-control"] in ("no-cache", "public, max-age=31536000, immutable")
    check_security_headers(r)


def test_if_none_match_answers_304(srv):
    r = requests.get(f"{srv.url}/console/index.html", timeout=60)
    etag = r.headers["etag"]
    for sent in (etag, f"W/{etag}", f'"nope", {etag}', "*"):
        again = requests.get(f"{srv.url}/console/index.html",
                             headers={"If-None-Match": sent}, timeout=60)
        assert again.status_code == 304, sent
        assert again.content == b""
        assert again.headers["etag"] == etag
        check_security_headers(again)
    other = requests.get(f"{srv.url}/console/index.html",
                         headers={"If-None-Match": '"0123456789abcdef0123456789abcdef"'},
                         timeout=60)
    assert other.status_code == 200 and other.content == r.content


def test_head_has_the_headers_and_no_body(srv):
    get = requests.get(f"{srv.url}/console/", timeout=60)
    with RawConn(srv.port) as c:
        c.send(f"HEAD /console/ HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
               "Connection: close\r\n\r\n".encode())
        r = c.read_response(head_only=True)
        assert c.wait_closed(60)
        assert c.buf == b"", "a body after the head of a HEAD answer"
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(get.content))
    assert r.headers["etag"] == get.headers["etag"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"] == CSP


def test_unknown_file_is_404(srv):
    for path in ("/console/nope.js", "/console/js/nope/deeper.css", "/console/nope/"):
        r = requests.get(f"{srv.url}{path}", timeout=60)
        assert_error(r, 404, "not_found")
        check_security_headers(r)


def test_other_methods_are_405(srv):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/console/", "/console/index.html", "/console"):
            r = requests.request(method, f"{srv.url}{path}", data=b"x", timeout=60)
            assert r.status_code == 405, (method, path, r.text)
            assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
            check_security_headers(r)


@pytest.mark.parametrize("path", ESCAPES)
def test_traversal_never_leaves_the_console(srv, path):
    r = raw_request(srv.port, "GET", path)
    assert r.status_code in (400, 404), (path, r.status_code, r.body[:200])
    assert b"root:" not in r.body
    # What was answered is no file of the console either.
    for p in repo_files():
        assert r.body != p.read_bytes(), (path, p)


def test_console_dir_serves_a_folder(server, tmp_path):
    """--console-dir DIR: the files under DIR, read at each request (an edit
    shows at once), with the same headers and the same refusals; a file
    outside DIR, and a symlink in it, are never served."""
    root = tmp_path / "ui"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<p>one</p>")
    (root / "js" / "app.js").write_text("export const x = 1;\n")
    (root / ".secret").write_text("hidden")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "link.txt").symlink_to(tmp_path / "outside.txt")
    srv = server("--console-dir", root)

    r = requests.get(f"{srv.url}/console/", timeout=60)
    assert r.status_code == 200 and r.text == "<p>one</p>"
    check_security_headers(r)
    etag = r.headers["etag"]
    assert etag == f'"{hashlib.sha256(b"<p>one</p>").hexdigest()[:32]}"'
    assert requests.get(f"{srv.url}/console/", headers={"If-None-Match": etag},
                        timeout=60).status_code == 304
    (root / "index.html").write_text("<p>two</p>")
    r = requests.get(f"{srv.url}/console/", headers={"If-None-Match": etag}, timeout=60)
    assert r.status_code == 200 and r.text == "<p>two</p>"

    js = requests.get(f"{srv.url}/console/js/app.js", timeout=60)
    assert js.status_code == 200 and js.text == "export const x = 1;\n"
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"

    for path in ["/console/.secret", "/console/link.txt", "/console/js",
                 "/console/..%2foutside.txt", "/console/../outside.txt"] + ESCAPES:
        r = raw_request(srv.port, "GET", path)
        assert r.status_code in (400, 404), (path, r.status_code, r.body[:200])
        assert b"outside" not in r.body and b"hidden" not in r.body and b"root:" not in r.body


def test_console_dir_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "missing", tmp_path / "file"):
        p = subprocess.run([MAYFLY_BIN, "server", "--data", str(tmp_path / "data"),
                            "--console-dir", str(bad)],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, p.stderr
        assert "--console-dir must be a folder" in p.stderr
