"""Egress: functions reach what their rules allow through the server's
gateway, and nothing else. Every server the functions reach runs here on
the host's loopback and is named by an explicit rule; addresses outside
(169.254.169.254, 10.x, 198.18.x, 2001:db8::) are only ever refused inside
the sandbox's own network namespace, which has no way out."""

import json
import os
import socket
import ssl
import subprocess
import threading
import http.server

import pytest
import requests

from conftest import deploy, deploy_py, free_port, get_logs, invoke, metrics, unique, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# ------------------------------------------------------------------ servers


class Counting:
    """A TCP forwarder in front of a server, counting each connection's raw
    bytes both ways: what the records must show."""

    def __init__(self, family, host, backend):
        self.backend = backend
        self.conns = []          # [client→server bytes, server→client bytes]
        self.lock = threading.Lock()
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            counts = [0, 0]
            with self.lock:
                self.conns.append(counts)
            b = socket.create_connection(self.backend)
            done = [0]
            for src, dst, i in ((c, b, 0), (b, c, 1)):
                threading.Thread(target=self._pipe, args=(src, dst, counts, i, done),
                                 daemon=True).start()

    @staticmethod
    def _pipe(src, dst, counts, i, done):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                counts[i] += len(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        done[0] += 1
        if done[0] == 2:
            src.close()
            dst.close()

    def close(self):
        self.sock.close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("hello from " + self.path).encode() * 10
        self.send_response(200 if not self.path.startswith("/missing") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Servers:
    def __init__(self, tmp):
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        # A self-signed certificate for api.test, which the functions trust.
        self.cert = os.path.join(tmp, "cert.pem")
        self.key = os.path.join(tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=api.test", "-addext", "subjectAltName=DNS:api.test",
                        "-keyout", self.key, "-out", self.cert], check=True,
                       capture_output=True)
        self.https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.https.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.https.socket = ctx.wrap_socket(self.https.socket, server_side=True)
        threading.Thread(target=self.https.serve_forever, daemon=True).start()
        self.plain = Counting(socket.AF_INET, "127.0.0.1", ("127.0.0.1", self.http.server_port))
        self.plain6 = Counting(socket.AF_INET6, "::1", ("127.0.0.1", self.http.server_port))
        self.tls = Counting(socket.AF_INET, "127.0.0.1", ("127.0.0.1", self.https.server_port))
        self.echo = socket.socket()
        self.echo.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.echo.bind(("127.0.0.1", 0))
        self.echo.listen(1024)
        self.echo_port = self.echo.getsockname()[1]
        self.echo_seen = []      # bytes each echo connection received
        self.echo_conns = []
        threading.Thread(target=self._echo_accept, daemon=True).start()

    def _echo_accept(self):
        while True:
            try:
                c, _ = self.echo.accept()
            except OSError:
                return
            self.echo_conns.append(c)
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    def _echo(self, c):
        seen = [0]
        self.echo_seen.append(seen)
        f = c.makefile("rb")
        try:
            for line in f:
                seen[0] += len(line)
                c.sendall(b"echo: " + line)
        except OSError:
            pass
        c.close()

    def close(self):
        for s in (self.plain, self.plain6, self.tls):
            s.close()
        self.http.shutdown()
        self.https.shutdown()
        self.echo.close()
        for c in self.echo_conns:
            try:
                c.close()
            except OSError:
                pass


@pytest.fixture(scope="module", params=["spliced", "relayed"])
def env(request, module_server_factory, tmp_path_factory):
    """Every test runs twice: with connections spliced in the kernel after
    their first exchange (the default) and relayed in user space all along
    (--egress-splice off)."""
    tmp = str(tmp_path_factory.mktemp("egress"))
    servers = Servers(tmp)
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("# names the functions may be given\n"
                "127.0.0.1 api.test echo.test\n"
                "::1 api6.test\n")
    srv = module_server_factory("--egress-hosts", hosts, "--egress-splice",
                                "on" if request.param == "spliced" else "off")
    yield srv, servers
    servers.close()


def record(srv, rid):
    r = requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def call(srv, name, event):
    r = invoke(srv, name, event)
    assert r.status_code == 200, r.text
    assert "X-Mayfly-Function-Error" not in r.headers, r.text
    return r.json(), r.headers["X-Mayfly-Request-Id"]


def log_text(srv, name, rid):
    return "\n".join(line["message"] for line in get_logs(srv, name, rid))


# ------------------------------------------------------------------ Python

PY_CLIENT = r"""
import json, socket, ssl, time, urllib.request, urllib.error

def fetch(url, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=20) as r:
            return {"status": r.status, "len": len(r.read())}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "len": len(e.read())}

def connect(host, port, family=0):
    t = time.monotonic()
    try:
        s = socket.create_connection((host, port), timeout=20)
        s.close()
        return {"ok": True}
    except OSError as e:
        return {"ok": False, "error": type(e).__name__, "errno": e.errno,
                "ms": (time.monotonic() - t) * 1000}

def handler(event, context):
    out = []
    for step in event["steps"]:
        kind = step[0]
        if kind == "fetch":
            out.append(fetch(step[1], step[2] if len(step) > 2 else None))
        elif kind == "connect":
            out.append(connect(step[1], step[2]))
        elif kind == "resolve":
            try:
                out.append({"addrs": sorted({a[4][0] for a in socket.getaddrinfo(step[1], 80)})})
            except socket.gaierror as e:
                out.append({"gaierror": e.errno})
        elif kind == "echo":
            s = socket.create_connection((step[1], step[2]), timeout=20)
            f = s.makefile("rwb")
            got = []
            for line in step[3]:
                f.write(line.encode() + b"\n"); f.flush()
                got.append(f.readline().decode())
            s.close()
            out.append({"echo": got})
    return out
"""


def deploy_client(srv, rules, **kw):
    name = unique("egress")
    deploy_py(srv, name, PY_CLIENT, egress=rules, **kw)
    return name


def test_python_reaches_http_by_name_and_the_record_counts_its_bytes(env):
    srv, s = env
    port = s.plain.port
    name = deploy_client(srv, [f"api.test:{port}"])
    before = len(s.plain.conns)
    out, rid = call(srv, name, {"steps": [["fetch", f"http://api.test:{port}/a/b?c=1"],
                                          ["fetch", f"http://api.test:{port}/missing"]]})
    assert out == [{"status": 200, "len": len(b"hello from /a/b?c=1") * 10},
                   {"status": 404, "len": len(b"hello from /missing") * 10}]
    rec = record(srv, rid)
    eg = rec["egress"]
    assert len(eg) == 2, eg
    seen = s.plain.conns[before:before + 2]
    for e, (up, down), path, status in zip(eg, seen, ["/a/b?c=1", "/missing"], [200, 404]):
        assert e["host"] == "api.test" and e["ip"] == "127.0.0.1" and e["port"] == port, e
        assert e["allowed"] is True and e["error"] is None, e
        assert e["http"] == {"method": "GET", "path": path, "status": status}, e
        assert (e["bytes_out"], e["bytes_in"]) == (up, down), (e, up, down)
        assert e["duration_ms"] >= 0 and e["start"], e
    assert rec["egress_bytes"] == sum(up + down for up, down in seen), rec
    # The CLI prints the record, then its connections as a table.
    p = srv.cli("invocation", rid)
    assert p.returncode == 0, p.stderr
    head, table = p.stdout.split("\negress:\n")
    assert json.loads(head)["request_id"] == rid
    rows = [line.split() for line in table.splitlines()]
    assert rows[0] == ["HOST", "ADDRESS", "PORT", "START", "DURATION_MS", "OUT", "IN", "ALLOWED",
                       "DETAIL"], rows
    assert rows[1][:3] == ["api.test", "127.0.0.1", str(port)] and rows[1][7] == "yes", rows
    assert rows[1][5:7] == [str(eg[0]["bytes_out"]), str(eg[0]["bytes_in"])], rows
    assert rows[1][8:] == ["GET", "/a/b?c=1", "->", "200"], rows
    assert rows[2][8:] == ["GET", "/missing", "->", "404"], rows


def test_python_reaches_http_by_ip_and_over_ipv6(env):
    srv, s = env
    name = deploy_client(srv, [f"127.0.0.1:{s.plain.port}", f"api6.test:{s.plain6.port}"])
    out, rid = call(srv, name, {"steps": [["fetch", f"http://127.0.0.1:{s.plain.port}/ip"],
                                          ["fetch", f"http://api6.test:{s.plain6.port}/six"]]})
    assert [o["status"] for o in out] == [200, 200], out
    eg = record(srv, rid)["egress"]
    assert [(e["host"], e["ip"]) for e in eg] == [("127.0.0.1", "127.0.0.1"), ("api6.test", "::1")]
    assert eg[1]["http"]["path"] == "/six"


def test_python_reaches_tls_and_the_record_has_the_server_name(env):
    srv, s = env
    name = deploy_client(srv, [f"api.test:{s.tls.port}"])
    # The function trusts the test's certificate, handed over in its event.
    with open(s.cert) as f:
        pem = f.read()
    src = PY_CLIENT + "\nimport os\n" + (
        "_h = handler\n"
        "def handler(event, context):\n"
        "    open('/tmp/ca.pem', 'w').write(event['ca'])\n"
        "    return _h(event, context)\n")
    deploy_py(srv, name, src, egress=[f"api.test:{s.tls.port}"])
    before = len(s.tls.conns)
    out, rid = call(srv, name, {"ca": pem, "steps": [
        ["fetch", f"https://api.test:{s.tls.port}/secure", "/tmp/ca.pem"]]})
    assert out == [{"status": 200, "len": len(b"hello from /secure") * 10}]
    (e,) = record(srv, rid)["egress"]
    up, down = s.tls.conns[before]
    assert e["tls"] == {"sni": "api.test"} and "http" not in e, e
    assert (e["bytes_out"], e["bytes_in"]) == (up, down)


def test_a_raw_tcp_line_protocol_works_and_is_recorded(env):
    srv, s = env
    name = deploy_client(srv, [f"echo.test:{s.echo_port}"])
    before = len(s.echo_seen)
    out, rid = call(srv, name, {"steps": [["echo", "echo.test", s.echo_port, ["one", "two"]]]})
    assert out == [{"echo": ["echo: one\n", "echo: two\n"]}]
    (e,) = record(srv, rid)["egress"]
    assert e["host"] == "echo.test" and e["port"] == s.echo_port
    assert e["bytes_out"] == len("one\ntwo\n") == s.echo_seen[before][0]
    assert e["bytes_in"] == len("echo: one\necho: two\n")


def denial_lines(srv, name, rid):
    return log_text(srv, name, rid)


def test_denials_fail_at_once_with_a_log_line_and_a_record(env):
    srv, s = env
    own_port = int(srv.url.rsplit(":", 1)[1])
    name = deploy_client(srv, ["api.test:%d" % s.plain.port, "*"], timeout_s=60)
    # Each refusal is immediate: were one to hang until TCP gave up, the
    # call would time out instead of answering.
    out, rid = call(srv, name, {"steps": [
        ["connect", "api.test", s.plain.port + 1],   # a port the rules do not name
        ["resolve", "other.test"],                   # a name no rule allows
        ["connect", "127.0.0.1", own_port],           # the server itself
        ["connect", "169.254.169.254", 80],           # metadata, not under "*"
        ["connect", "10.1.2.3", 80],                  # private, not under "*"
        ["connect", "api.test", s.plain.port],        # named: allowed
    ]})
    for i in (0, 2, 3, 4):
        assert out[i]["ok"] is False and out[i]["errno"] == 111, out  # ECONNREFUSED
    assert out[1] == {"gaierror": socket.EAI_NONAME}, out
    assert out[5] == {"ok": True}, out
    log = log_text(srv, name, rid)
    # An address is shown by the name the function last resolved to it:
    # 127.0.0.1 is api.test's here, whichever way the function dialled it.
    denied_dests = [f"api.test:{s.plain.port + 1}", "other.test", f"api.test:{own_port}",
                    "169.254.169.254:80", "10.1.2.3:80"]
    for dest in denied_dests:
        assert f"mayfly: egress to {dest} denied by the function's policy" in log, (dest, log)
    eg = record(srv, rid)["egress"]
    denied = {(e["host"], e["ip"], e["port"]) for e in eg if not e["allowed"]}
    assert denied == {("api.test", "127.0.0.1", s.plain.port + 1), ("other.test", "", 0),
                      ("api.test", "127.0.0.1", own_port),
                      ("169.254.169.254", "169.254.169.254", 80),
                      ("10.1.2.3", "10.1.2.3", 80)}, eg
    assert [e["port"] for e in eg if e["allowed"]] == [s.plain.port], eg


def test_naming_loopback_does_not_reach_the_server_itself(env):
    srv, s = env
    own_port = int(srv.url.rsplit(":", 1)[1])
    name = deploy_client(srv, ["127.0.0.1"])
    out, rid = call(srv, name, {"steps": [["connect", "127.0.0.1", own_port],
                                          ["connect", "127.0.0.1", s.echo_port]]})
    assert out[0]["ok"] is False and out[0]["errno"] == 111, out
    assert out[1] == {"ok": True}, out
    assert (f"mayfly: egress to 127.0.0.1:{own_port} denied by the function's policy"
            in log_text(srv, name, rid))


ESCAPES = r"""
import ctypes, errno, socket

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    u.sendto(b"x", ("198.18.0.1", 53))
    u.recv(10)

def raw():
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)

def packet():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)

def v6():
    socket.create_connection(("2001:db8::1", 80), timeout=5)

def uring():
    libc = ctypes.CDLL(None, use_errno=True)
    params = ctypes.create_string_buffer(120)
    fd = libc.syscall(425, 8, params)      # io_uring_setup
    if fd < 0:
        raise OSError(ctypes.get_errno(), "io_uring_setup")

def relay():
    # The gateway's own listener inside, dialled directly.
    s = socket.create_connection(("127.0.0.1", 1001), timeout=5)
    s.sendall(b"x")
    if s.recv(1) == b"":
        raise OSError(errno.ECONNRESET, "closed")

def handler(event, context):
    return {k: attempt(f) for k, f in
            [("udp", udp), ("raw", raw), ("packet", packet), ("v6", v6), ("uring", uring),
             ("relay", relay)]}
"""


def test_escapes_stay_impossible(env):
    srv, s = env
    name = unique("escape")
    # No "*": an address outside the rules must not be dialled from the host.
    deploy_py(srv, name, ESCAPES, egress=[f"api.test:{s.plain.port}"])
    out, rid = call(srv, name, {})
    assert out["udp"] in ("EPERM", "ECONNREFUSED"), out
    assert out["raw"] in ("EPERM", "EACCES", "EAFNOSUPPORT"), out
    assert out["packet"] in ("EPERM", "EACCES", "EAFNOSUPPORT"), out
    assert out["v6"] == "ECONNREFUSED", out
    assert out["uring"] in ("EPERM", "ENOSYS"), out
    assert out["relay"] in ("ECONNRESET", "EPIPE", "ECONNREFUSED"), out
    log = log_text(srv, name, rid)
    assert "egress to 198.18.0.1:53/udp denied" in log, log
    assert "egress to [2001:db8::1]:80 denied" in log, log


MANY = r"""
import socket
def handler(event, context):
    socks, results = [], []
    for i in range(event["n"]):
        try:
            socks.append(socket.create_connection(("echo.test", event["port"]), timeout=20))
            results.append("ok")
        except OSError as e:
            results.append(e.errno)
    # Every connection works, not only opens.
    for s in socks:
        s.sendall(b"ping\n")
    got = sum(1 for s in socks if s.makefile("rb").readline() == b"echo: ping\n")
    for s in socks:
        s.close()
    return {"results": results, "echoed": got}
"""


def test_the_257th_connection_of_an_instance_fails_clearly(env):
    srv, s = env
    name = unique("many")
    deploy_py(srv, name, MANY, egress=[f"echo.test:{s.echo_port}"])
    out, rid = call(srv, name, {"n": 257, "port": s.echo_port})
    assert out["results"][:256] == ["ok"] * 256, out["results"]
    assert out["results"][256] == 111, out["results"][256:]  # ECONNREFUSED
    assert out["echoed"] == 256
    assert "the instance already has 256 connections open" in log_text(srv, name, rid)
    # The record lists 100 connections, and meters every one's bytes.
    rec = record(srv, rid)
    assert len(rec["egress"]) == 100 and rec["egress_more"] >= 156, rec["egress_more"]
    assert rec["egress_bytes"] == 256 * len(b"ping\necho: ping\n"), rec["egress_bytes"]


NODE_CLIENT = r"""
const https = require('https');
const http = require('http');
const get = (mod, url, opts) => new Promise((resolve, reject) => {
  mod.get(url, opts || {}, (res) => {
    let n = 0;
    res.on('data', (d) => { n += d.length; });
    res.on('end', () => resolve({ status: res.statusCode, len: n }));
  }).on('error', reject);
});
exports.handler = async (event) => {
  const out = [];
  out.push(await get(https, event.https, { ca: event.ca }));
  const r = await fetch(event.fetch);
  out.push({ status: r.status, len: (await r.text()).length });
  out.push(await get(http, event.http));
  return out;
};
"""


def test_node_https_fetch_and_http(env):
    srv, s = env
    name = unique("node-egress")
    with open(s.cert) as f:
        pem = f.read()
    deploy(srv, name, {"index.js": NODE_CLIENT}, runtime="nodejs", handler="index.handler",
           egress=[f"api.test:{s.tls.port}", f"api.test:{s.plain.port}",
                   f"127.0.0.1:{s.plain.port}"])
    out, rid = call(srv, name, {"ca": pem, "https": f"https://api.test:{s.tls.port}/n1",
                                "fetch": f"http://api.test:{s.plain.port}/n2",
                                "http": f"http://127.0.0.1:{s.plain.port}/n3"})
    assert [o["status"] for o in out] == [200, 200, 200], out
    eg = record(srv, rid)["egress"]
    paths = [e.get("http", {}).get("path") for e in eg]
    assert "/n2" in paths and "/n3" in paths, eg
    assert any(e.get("tls", {}).get("sni") == "api.test" for e in eg), eg


C_CLIENT = r"""
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "mayfly_runtime.h"

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char host[128], port[16], path[128];
    if (mayfly_json_get_string(ev->body, ev->body_len, "host", host, sizeof host) < 0 ||
        mayfly_json_get_string(ev->body, ev->body_len, "port", port, sizeof port) < 0 ||
        mayfly_json_get_string(ev->body, ev->body_len, "path", path, sizeof path) < 0)
        return mayfly_response_error(res, "BadEvent", "host, port and path");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r != 0)
        return mayfly_response_error(res, "Resolve", "%s", gai_strerror(r));
    int s = socket(ai->ai_family, SOCK_STREAM, 0);
    if (connect(s, ai->ai_addr, ai->ai_addrlen) < 0)
        return mayfly_response_error(res, "Connect", "%m");
    freeaddrinfo(ai);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     path, host);
    write(s, req, (size_t)n);
    char buf[4096];
    size_t total = 0;
    ssize_t k;
    char first[13] = {0};
    while ((k = read(s, buf, sizeof buf)) > 0) {
        if (total == 0)
            memcpy(first, buf, k < 12 ? (size_t)k : 12);
        total += (size_t)k;
    }
    close(s);
    return mayfly_response_printf(res, "{\"bytes\":%zu,\"status\":\"%s\"}", total, first + 9);
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
"""


def test_a_compiled_c_function_by_name_and_by_ip(env, tmp_path):
    srv, s = env
    src = tmp_path / "main.c"
    src.write_text(C_CLIENT)
    out = tmp_path / "bootstrap"
    subprocess.run(["gcc", "-std=gnu17", "-O1", "-I", os.path.join(ROOT, "runtimes/c"), "-o",
                    str(out), str(src), os.path.join(ROOT, "runtimes/c/mayfly_runtime.c")],
                   check=True)
    name = unique("c-egress")
    from conftest import Entry
    deploy(srv, name, {"bootstrap": Entry(out.read_bytes(), mode=0o755)}, runtime="provided",
           handler="x", egress=[f"api.test:{s.plain.port}", f"127.0.0.1:{s.plain.port}"])
    before = len(s.plain.conns)
    got, rid = call(srv, name, {"host": "api.test", "port": str(s.plain.port), "path": "/c1"})
    assert got["status"] == "200", got
    (e,) = record(srv, rid)["egress"]
    assert e["http"]["path"] == "/c1" and e["bytes_in"] == got["bytes"]
    assert e["bytes_in"] == s.plain.conns[before][1]
    got, rid = call(srv, name, {"host": "127.0.0.1", "port": str(s.plain.port), "path": "/c2"})
    assert got["status"] == "200", got


def test_egress_metrics_count_connections_and_bytes(env):
    srv, s = env
    name = deploy_client(srv, [f"api.test:{s.plain.port}"])
    call(srv, name, {"steps": [["fetch", f"http://api.test:{s.plain.port}/m"],
                               ["connect", "api.test", s.plain.port + 1]]})
    m = metrics(srv)
    key = lambda n, **l: (n, frozenset(dict(function=name, **l).items()))
    assert m.get(key("mayfly_egress_connections_total", allowed="true")) == 1
    assert m.get(key("mayfly_egress_connections_total", allowed="false")) == 1
    assert m.get(key("mayfly_egress_bytes_total", direction="in"), 0) > 0
    assert m.get(key("mayfly_egress_bytes_total", direction="out"), 0) > 0


def test_a_function_without_rules_has_no_way_out(env):
    srv, s = env
    name = deploy_client(srv, [])
    out, _ = call(srv, name, {"steps": [["connect", "127.0.0.1", s.plain.port],
                                        ["resolve", "api.test"]]})
    # Its loopback is its own: nothing listens there.
    assert out[0]["ok"] is False and out[0]["errno"] == 111, out
    assert "gaierror" in out[1], out


KEEPALIVE = r"""
import http.client
CONN = {}
def handler(event, context):
    c = CONN.get("c")
    if c is None:
        c = CONN["c"] = http.client.HTTPConnection("api.test", event["port"], timeout=20)
    c.request("GET", event["path"])
    r = c.getresponse()
    return {"status": r.status, "len": len(r.read())}
"""


def test_a_kept_alive_connection_goes_on_into_the_next_calls_record(env):
    srv, s = env
    name = unique("keepalive")
    deploy_py(srv, name, KEEPALIVE, egress=[f"api.test:{s.plain.port}"])
    before = len(s.plain.conns)
    first, rid1 = call(srv, name, {"port": s.plain.port, "path": "/one"})
    second, rid2 = call(srv, name, {"port": s.plain.port, "path": "/two"})
    assert first["status"] == second["status"] == 200
    assert len(s.plain.conns) == before + 1, "the function kept one connection"
    (e1,) = record(srv, rid1)["egress"]
    (e2,) = record(srv, rid2)["egress"]
    assert e1["http"]["path"] == "/one" and e1.get("open") is True and not e1.get("reused")
    assert e2["http"]["path"] == "/two" and e2.get("reused") is True
    up, down = s.plain.conns[before]
    assert (e1["bytes_out"] + e2["bytes_out"], e1["bytes_in"] + e2["bytes_in"]) == (up, down)
    assert (record(srv, rid1)["egress_bytes"] + record(srv, rid2)["egress_bytes"]
            == up + down)


def test_a_server_without_the_gateway_refuses_to_start_functions_with_rules(module_server_factory):
    srv = module_server_factory("--disable-egress")
    name = unique("noegress")
    deploy_py(srv, name, PY_CLIENT, egress=["api.test:80"])
    r = invoke(srv, name, {"steps": []})
    assert "--disable-egress" in r.text, r.text
    plain = unique("plain")
    deploy_py(srv, plain, PY_CLIENT)
    out, _ = call(srv, plain, {"steps": []})
    assert out == []


DOWN = r"""
import errno, socket
def handler(event, context):
    try:
        s = socket.create_connection(("127.0.0.1", event["port"]), timeout=20)
        s.sendall(b"hello\n")
        return {"recv": s.recv(10).decode()}
    except OSError as e:
        return {"error": errno.errorcode.get(e.errno)}
"""


def test_an_allowed_upstream_that_is_down_resets_and_is_recorded(env):
    srv, s = env
    port = free_port()        # nothing listens there on the host
    name = unique("down")
    deploy_py(srv, name, DOWN, egress=[f"127.0.0.1:{port}"])
    out, rid = call(srv, name, {"port": port})
    # connect() reached the relay, which could not reach the upstream: the
    # function sees a reset (during or right after its connect) or an end.
    assert out.get("error") in ("ECONNRESET", "EPIPE") or out.get("recv") == "", out
    (e,) = record(srv, rid)["egress"]
    assert e["allowed"] is True and e["error"] == "ECONNREFUSED" and e["bytes_in"] == 0, e
    assert f"mayfly: egress to 127.0.0.1:{port} failed: connection refused" in \
        log_text(srv, name, rid)


CURL_BOOTSTRAP = r"""#!/bin/bash
# A custom runtime in bash: curl talks to the Runtime API and, through the
# gateway, to the URL each event names.
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
    headers=$(mktemp)
    event=$(curl -sS -D "$headers" "$api/next")
    rid=$(grep -i '^Lambda-Runtime-Aws-Request-Id:' "$headers" | tr -d '\r' | cut -d' ' -f2)
    url=$(printf '%s' "$event" | sed -n 's/.*"url": *"\([^"]*\)".*/\1/p')
    body=$(curl -sS --max-time 20 -w ' %{http_code}' "$url" 2>&1)
    code=${body##* }
    curl -sS -o /dev/null -X POST "$api/$rid/response" -d "{\"code\": \"$code\"}"
    rm -f "$headers"
done
"""

NODE_NET = r"""
const net = require('net');
exports.handler = (event) => new Promise((resolve, reject) => {
  const s = net.connect(event.port, 'echo.test', () => s.write('from node\n'));
  let got = '';
  s.on('data', (d) => { got += d; if (got.endsWith('\n')) { s.end(); resolve(got); } });
  s.on('error', reject);
});
"""


def test_curl_in_a_shell_runtime_and_node_net(env):
    srv, s = env
    from conftest import Entry
    name = unique("curl")
    deploy(srv, name, {"bootstrap": Entry(CURL_BOOTSTRAP.encode(), mode=0o755)},
           runtime="provided", handler="x", egress=[f"api.test:{s.plain.port}"])
    out, rid = call(srv, name, {"url": f"http://api.test:{s.plain.port}/curl"})
    assert out == {"code": "200"}, out
    (e,) = record(srv, rid)["egress"]
    assert e["http"] == {"method": "GET", "path": "/curl", "status": 200}, e

    name = unique("node-net")
    deploy(srv, name, {"index.js": NODE_NET}, runtime="nodejs", handler="index.handler",
           egress=[f"echo.test:{s.echo_port}"])
    out, rid = call(srv, name, {"port": s.echo_port})
    assert out == "echo: from node\n", out
    (e,) = record(srv, rid)["egress"]
    assert (e["host"], e["bytes_out"], e["bytes_in"]) == ("echo.test", 10, 16), e


REQUESTS = r"""
def handler(event, context):
    try:
        import requests
    except ImportError:
        return {"skip": "requests is not installed where the sandbox can see it"}
    r = requests.get(event["url"], timeout=20)
    return {"status": r.status_code, "len": len(r.content)}
"""


def test_python_requests_where_installed(env):
    srv, s = env
    name = unique("requests")
    deploy_py(srv, name, REQUESTS, egress=[f"api.test:{s.plain.port}"])
    out, rid = call(srv, name, {"url": f"http://api.test:{s.plain.port}/rq"})
    if "skip" in out:
        pytest.skip(out["skip"])
    assert out == {"status": 200, "len": len(b"hello from /rq") * 10}, out
    (e,) = record(srv, rid)["egress"]
    assert e["http"]["path"] == "/rq"


HANGS = r"""
import socket, time
def handler(event, context):
    s = socket.create_connection(("echo.test", event["port"]), timeout=20)
    s.sendall(b"before the end\n")
    s.recv(100)
    time.sleep(600)
"""


def test_a_call_that_times_out_keeps_its_connections_in_its_record(env):
    srv, s = env
    name = unique("hangs")
    deploy_py(srv, name, HANGS, egress=[f"echo.test:{s.echo_port}"], timeout_s=3)
    r = invoke(srv, name, {"port": s.echo_port})
    assert r.status_code == 200 and "timed out" in r.text, r.text
    rec = wait_for("the timed-out record", lambda: (lambda x: x if x["egress"] else None)(
        record(srv, r.headers["X-Mayfly-Request-Id"])))
    (e,) = rec["egress"]
    assert rec["status"] == "timeout" and e["host"] == "echo.test", rec
    assert (e["bytes_out"], e["bytes_in"]) == (15, 21), e


AT_IMPORT = r"""
import socket
# At import, before any call: the gateway must already be in place.
try:
    _s = socket.create_connection(("echo.test", int(open("/var/task/port").read())), timeout=20)
    _s.sendall(b"init\n")
    AT_INIT = _s.makefile("rb").readline().decode()
except OSError as e:
    AT_INIT = "failed: %r" % e
def handler(event, context):
    return AT_INIT
"""


@pytest.mark.parametrize("zygotes", ["0", "2"])
def test_a_function_can_connect_during_its_init(module_server_factory, env, zygotes, tmp_path):
    _, s = env
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 echo.test\n")
    srv = module_server_factory("--egress-hosts", str(hosts), "--zygotes", zygotes)
    for _ in range(3):
        name = unique("atinit")
        deploy(srv, name, {"app.py": AT_IMPORT, "port": str(s.echo_port)},
               egress=[f"echo.test:{s.echo_port}"])
        out, _ = call(srv, name, {})
        assert out == "echo: init\n", out
