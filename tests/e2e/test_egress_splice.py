"""Egress connections the kernel splices after their first exchange: bytes
stay whole and in order both ways, in bulk and past the queue limit (when
the relay takes a direction back and gives it again), ends and resets pass
through, and each call's record counts exactly what the far server saw,
with the HTTP line of each call on a kept-alive connection. Every server
here runs on the host's loopback and is named by an explicit rule."""

import hashlib
import http.server
import os
import socket
import threading

import pytest

from conftest import deploy_py, metrics, unique
from test_egress import Counting, Handler, call, record


class Bulk:
    """A line protocol: the client's first line is `MODE N`, answered `ok`
    (the first exchange, which the relay reads), then:
      up N     reads N bytes slowly, answers `sha HEX`
      down     sends the test's payload, then closes
      count    reads to the end of the client's half, answers `count N sha HEX`, closes
      close    reads `bye`, closes
      reset    reads `bye`, resets
    Each connection's bytes both ways are counted."""

    def __init__(self, payload):
        self.payload = payload
        self.conns = []          # [bytes in, bytes out]
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        n = [0, 0]
        self.conns.append(n)

        def send(b):
            c.sendall(b)
            n[1] += len(b)

        def recv(k):
            b = c.recv(k)
            n[0] += len(b)
            return b

        try:
            line = b""
            while not line.endswith(b"\n"):
                b = recv(1)
                if not b:
                    return
                line += b
            mode, size = line.decode().split()
            size = int(size)
            send(b"ok\n")
            if mode == "up":
                h, left = hashlib.sha256(), size
                while left:
                    b = recv(min(left, 65536))
                    if not b:
                        break
                    h.update(b)
                    left -= len(b)
                    threading.Event().wait(0.001)   # a slow reader
                send(b"sha %s\n" % h.hexdigest().encode())
                recv(1)                                 # until the client ends
            elif mode == "down":
                send(self.payload)
                c.shutdown(socket.SHUT_WR)
                recv(1)
            elif mode == "count":
                h, total = hashlib.sha256(), 0
                while True:
                    b = recv(65536)
                    if not b:
                        break
                    h.update(b)
                    total += len(b)
                send(b"count %d sha %s\n" % (total, h.hexdigest().encode()))
            elif mode in ("close", "reset"):
                while not recv(4096).endswith(b"bye\n"):
                    pass
                if mode == "reset":
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


CLIENT = r"""
import hashlib, os, socket

def first(s, line):
    s.sendall(line)
    got = b""
    while not got.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise RuntimeError("closed during the first exchange")
        got += b
    assert got == b"ok\n", got

def read_to_end(s):
    out = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(out)
        out.append(b)

def handler(event, context):
    mode, port = event["mode"], event["port"]
    s = socket.create_connection(("bulk.test", port), timeout=60)
    if mode == "up":
        data = hashlib.sha256(b"seed").digest() * (event["size"] // 32)
        first(s, b"up %d\n" % len(data))
        s.sendall(data)
        answer = b""
        while not answer.endswith(b"\n"):
            answer += s.recv(100)
        s.close()
        return {"sent": hashlib.sha256(data).hexdigest(), "answer": answer.decode().split()[1]}
    if mode == "down":
        first(s, b"down 0\n")
        data = read_to_end(s)
        s.close()
        return {"len": len(data), "sha": hashlib.sha256(data).hexdigest()}
    if mode == "count":
        data = os.urandom(event["size"])
        first(s, b"count 0\n")
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        answer = read_to_end(s).decode().split()
        s.close()
        return {"len": len(data), "sha": hashlib.sha256(data).hexdigest(),
                "count": int(answer[1]), "their_sha": answer[3]}
    if mode in ("close", "reset"):
        first(s, b"%s 0\n" % mode.encode())
        s.sendall(b"bye\n")
        try:
            rest = s.recv(100)
            out = {"eof": rest == b""}
        except ConnectionResetError:
            out = {"reset": True}
        s.close()
        return out
"""


@pytest.fixture(scope="module")
def env(module_server_factory, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("splice"))
    payload = os.urandom(24 << 20)
    bulk = Bulk(payload)
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    web.daemon_threads = True
    threading.Thread(target=web.serve_forever, daemon=True).start()
    counting = Counting(socket.AF_INET, "127.0.0.1", ("127.0.0.1", web.server_port))
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 bulk.test api.test\n")
    srv = module_server_factory("--egress-hosts", hosts, "--log-level", "debug")
    name = unique("splice")
    deploy_py(srv, name, CLIENT, egress=[f"bulk.test:{bulk.port}"], timeout_s=120,
              memory_mb=512)
    yield srv, name, bulk, payload, counting
    bulk.close()
    counting.close()
    web.shutdown()


def events(srv):
    """Bytes spliced (all functions) and the splice events."""
    m = metrics(srv)
    out = {e: m.get(("mayfly_egress_splice_events_total", frozenset({("event", e)})), 0)
           for e in ("ended", "limit")}
    out["spliced"] = sum(v for (n, _), v in m.items() if n == "mayfly_egress_spliced_bytes_total")
    return out


def only_entry(srv, rid):
    (e,) = record(srv, rid)["egress"]
    return e


def test_an_upload_past_the_queue_limit_arrives_whole_and_counted(env):
    srv, name, bulk, _, _ = env
    before = events(srv)
    n = len(bulk.conns)
    out, rid = call(srv, name, {"mode": "up", "port": bulk.port, "size": 48 << 20})
    assert out["answer"] == out["sent"]
    after = events(srv)
    assert after["spliced"] > before["spliced"]
    # The far end reads slowly: the kernel's queue met its limit and the
    # relay took the direction back (and gave it again) without a byte lost.
    assert after["limit"] > before["limit"], (before, after)
    e = only_entry(srv, rid)
    assert [e["bytes_out"], e["bytes_in"]] == bulk.conns[n]


def test_a_download_arrives_whole_and_counted(env):
    srv, name, bulk, payload, _ = env
    n = len(bulk.conns)
    out, rid = call(srv, name, {"mode": "down", "port": bulk.port})
    assert out == {"len": len(payload), "sha": hashlib.sha256(payload).hexdigest()}
    e = only_entry(srv, rid)
    assert [e["bytes_out"], e["bytes_in"]] == bulk.conns[n]


def test_a_half_close_after_splicing_passes_the_end_both_ways(env):
    srv, name, bulk, _, _ = env
    before = events(srv)
    n = len(bulk.conns)
    out, rid = call(srv, name, {"mode": "count", "port": bulk.port, "size": 3 << 20})
    assert (out["count"], out["their_sha"]) == (out["len"], out["sha"])
    assert events(srv)["ended"] > before["ended"]
    e = only_entry(srv, rid)
    assert [e["bytes_out"], e["bytes_in"]] == bulk.conns[n]
    assert not e.get("open")


@pytest.mark.parametrize("mode", ["close", "reset"])
def test_an_upstream_that_closes_or_resets_a_spliced_connection(env, mode):
    srv, name, bulk, _, _ = env
    n = len(bulk.conns)
    out, rid = call(srv, name, {"mode": mode, "port": bulk.port})
    assert out == ({"eof": True} if mode == "close" else {"reset": True})
    e = only_entry(srv, rid)
    assert [e["bytes_out"], e["bytes_in"]] == bulk.conns[n]


KEEPALIVE = r"""
import http.client
CONN = {}
def handler(event, context):
    c = CONN.get("c")
    if c is None:
        c = CONN["c"] = http.client.HTTPConnection("api.test", event["port"], timeout=20)
    out = []
    for path in event["paths"]:
        c.request("GET", path)
        r = c.getresponse()
        out.append([r.status, len(r.read())])
    return out
"""


def test_each_call_on_a_spliced_keep_alive_connection_has_its_http_line_and_bytes(env):
    srv, _, _, _, counting = env
    name = unique("keepalive")
    deploy_py(srv, name, KEEPALIVE, egress=[f"api.test:{counting.port}"])
    before = len(counting.conns)
    spliced = events(srv)["spliced"]
    entries = []
    for i in range(8):
        paths = [f"/call{i}", f"/missing{i}", "/more"] if i % 2 else [f"/call{i}"]
        out, rid = call(srv, name, {"port": counting.port, "paths": paths})
        assert out[0][0] == 200
        (e,) = record(srv, rid)["egress"]
        # The first request of each call, by the relay in the first call
        # and by the heads the kernel copied in the rest.
        assert e["http"] == {"method": "GET", "path": f"/call{i}", "status": 200}, e
        assert bool(e.get("reused")) == (i > 0)
        entries.append(e)
    assert len(counting.conns) == before + 1, "one kept-alive connection"
    assert events(srv)["spliced"] > spliced
    up, down = counting.conns[before]
    assert sum(e["bytes_out"] for e in entries) == up
    assert sum(e["bytes_in"] for e in entries) == down
