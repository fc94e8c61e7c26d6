"""What one client can make the HTTP server hold or do, on every listener:
answers a client does not read (the public API, a function's Runtime API
and a followed log), a flood of pipelined requests, idle connections, and
request bodies being received. Each test counts bytes, requests or
connections, never time: where a test must wait for the server to stop
taking a flood, a deadline only decides when to look."""

import json
import os
import re
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import (RawConn, assert_error, deploy_py, fn_body, invoke_ok, rss_kib, unique,
                      wait_for)

OUTPUT_HIGH_WATER = 1 << 20  # HTTP_OUTPUT_HIGH_WATER in src/http/server.h
REQUESTS_PER_TURN = 32  # HTTP_REQUESTS_PER_TURN
FOLLOW_BACKLOG_MAX = 256 << 10  # FOLLOW_BACKLOG_MAX in src/api/logs.c

# A freed buffer of the ASan build sits in ASan's quarantine (256 MiB by
# default) before its memory is used again, which would read as growth in
# the RSS comparisons below; a small one keeps them about the server.
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=4"]))}


def get_req(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: mayfly\r\n{extra}\r\n".encode()


def metric(srv, name, source=None, **labels):
    """The value of one series in /metrics (0 when it is not there yet),
    asked from the loopback address source (default 127.0.0.1)."""
    if source:
        with RawConnFrom(srv.port, source) as c:
            c.send(get_req("/metrics"))
            r = c.read_response()
    else:
        r = requests.get(f"{srv.url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    text = r.text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + want + '}') if want else ''} (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def connect_from(port, source_ip, timeout=30):
    """A connection to the server from another loopback address: the server
    sees another client."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", port))
    return s


class Flood:
    """Sends data on sock from a thread and reports how much went, so a test
    can see whether the server keeps reading."""

    def __init__(self, sock, data):
        self.sock, self.data, self.sent, self.done = sock, data, 0, False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        view = memoryview(self.data)
        try:
            while self.sent < len(self.data):
                self.sent += self.sock.send(view[self.sent:self.sent + (1 << 20)])
        except OSError:
            pass
        self.done = True


def wait_until_taken_or_stalled(flood, progress):
    """Waits until flood is sent in full, or until neither it nor the
    server's progress() has moved over a few looks in a row: the server has
    stopped taking it. Returns whether it stalled."""
    last, still = None, 0
    deadline = time.monotonic() + 300  # a hang guard only
    while time.monotonic() < deadline:
        if flood.done:
            return False
        now = (flood.sent, progress())
        still = still + 1 if now == last else 0
        if still >= 4:
            return True
        last = now
        time.sleep(0.5)
    raise AssertionError("the flood neither finished nor stalled")


# ---------------------------------------------------------------- output


def test_pipelining_client_that_never_reads_is_not_buffered(server):
    srv = server(env=ASAN_ENV)
    base = rss_kib(srv)
    one = get_req("/v1/functions")
    flood_bytes = 64 << 20
    data = one * (flood_bytes // len(one))
    answer = requests.get(f"{srv.url}/v1/functions", timeout=30)
    answer_size = len(answer.content) + sum(len(k) + len(v) + 4 for k, v in
                                            answer.headers.items()) + 20
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=None)
    try:
        flood = Flood(sock, data)
        served = lambda: metric(srv, "mayfly_http_requests_total", route="/v1/functions",
                                code="200")
        stalled = wait_until_taken_or_stalled(flood, served)
        assert stalled, ("the server read a 64 MiB pipelined flood from a client that reads "
                         "none of its answers")
        grown_kib = rss_kib(srv) - base
        answered = served()
        # It answered what the socket buffers and its 1 MiB bound hold, and
        # then stopped reading: nowhere near the 2.3 million requests sent.
        asked = len(data) // len(one)
        assert answered * answer_size < 64 << 20, (answered, asked)
        assert grown_kib < 24 << 10, (
            f"the server grew by {grown_kib} KiB for a client that reads nothing "
            f"({flood.sent} bytes of requests taken)")
        # Everyone else is served meanwhile.
        assert requests.get(f"{srv.url}/healthz", timeout=30).status_code == 200
        assert requests.get(f"{srv.url}/v1/functions", timeout=30).status_code == 200
    finally:
        sock.close()
    assert requests.get(f"{srv.url}/healthz", timeout=30).status_code == 200


def test_paused_connection_resumes_once_its_client_reads(server):
    """Back-pressure is a pause, not a refusal: a client that pipelines far
    more than the bound and reads slowly gets every answer, in order."""
    srv = server()
    n = 30000
    paths = [f"/v1/functions/missing-{i}" for i in range(n)]
    data = b"".join(get_req(p) for p in paths)
    with RawConn(srv.port, timeout=60) as c:
        flood = Flood(c.sock, data)
        for i, p in enumerate(paths):
            r = c.read_response()
            assert r.status_code == 404, (i, r.status_code)
            assert p.rsplit("/", 1)[1] in r.text, (i, r.text)
        assert flood.done and flood.sent == len(data)


RUNTIME_FLOOD = r'''
import socket

held = []


def handler(event, context):
    """Pipelines GET /next on a second connection to this sandbox's Runtime
    API and never reads the answers; the socket outlives the call."""
    s = socket.create_connection(("127.0.0.1", 9001))
    held.append(s)
    one = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n"
    data = one * (event["mb"] * 1048576 // len(one))
    s.settimeout(event["stall_s"])
    sent = 0
    view = memoryview(data)
    try:
        while sent < len(data):
            sent += s.send(view[sent:sent + 1048576])
    except socket.timeout:
        pass
    return {"asked": len(data), "sent": sent}
'''


def test_runtime_api_flood_that_never_reads_is_not_buffered(server):
    """The same bound on a sandbox's Runtime API: a function pipelining
    64 MiB of GET /next (each answered 409 at once) without reading."""
    srv = server(env=ASAN_ENV)
    name = unique("rtflood")
    deploy_py(srv, name, RUNTIME_FLOOD, memory_mb=512, timeout_s=120)
    invoke_ok(srv, name, {"mb": 1, "stall_s": 5})  # warm: the server's own allocations settle
    base = rss_kib(srv)
    r = invoke_ok(srv, name, {"mb": 64, "stall_s": 5}, timeout=300)
    out = r.json()
    grown_kib = rss_kib(srv) - base
    assert out["sent"] < out["asked"], f"the Runtime API read the whole flood: {out}"
    assert grown_kib < 24 << 10, f"the server grew by {grown_kib} KiB: {out}"
    # The instance and the server go on working.
    other = unique("other")
    deploy_py(srv, other, "def handler(event, context):\n    return event\n")
    assert invoke_ok(srv, other, {"x": 1}).json() == {"x": 1}


LOGGER = r'''
def handler(event, context):
    for i in range(event["lines"]):
        print("%s %06d %s" % (event["tag"], i, "x" * 1000))
    return event["lines"]
'''


class StreamReader:
    """Reads a chunked NDJSON stream (after its head) on a thread, parsing
    each line, until a line satisfies stop."""

    def __init__(self, conn, stop):
        self.conn, self.stop, self.lines, self.done, self.error = conn, stop, [], False, None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        pending = b""
        try:
            while True:
                size = int(self.conn._read_line().split(b";")[0], 16)
                if not size:
                    raise EOFError("the stream ended")
                pending += self.conn._read_exact(size)
                self.conn._read_exact(2)
                *whole, pending = pending.split(b"\n")
                for raw in whole:
                    if raw.strip():
                        self.lines.append(json.loads(raw))
                        if self.stop(self.lines[-1]):
                            return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.done = True


def test_log_follower_that_stops_reading_gets_a_gap_line(server):
    srv = server(env=ASAN_ENV)
    name = unique("follow")
    deploy_py(srv, name, LOGGER, memory_mb=256)
    with RawConn(srv.port, timeout=120) as c:
        c.send(get_req(f"/v1/functions/{name}/logs?follow=1"))
        head = c.read_response(head_only=True)
        assert head.status_code == 200
        # No reading while the function prints about 45 MiB of lines.
        calls, per_call = 50, 900
        for k in range(calls):
            invoke_ok(srv, name, {"lines": per_call, "tag": f"c{k:02d}"})
        # What the server holds for the follower is bounded (its backlog of
        # 256 KiB and the last lines it wrote), against the 45 MiB printed:
        # counted by the server itself, so a busy machine's lagging writer
        # thread (whose queue is not the follower's) does not blur it.
        unsent = metric(srv, "mayfly_http_response_unsent_bytes")
        assert unsent < 4 << 20, f"the server holds {unsent} bytes for a follower that reads nothing"
        # Now it reads. A line printed once the backlog has drained goes
        # out, after a gap line saying how many were left out before it.
        reader = StreamReader(c, lambda l: re.match(r"^l\d{3} ", l.get("message", "")))
        lasts = 0

        def last_arrived():
            nonlocal lasts
            if not reader.done:
                invoke_ok(srv, name, {"lines": 1, "tag": f"l{lasts:03d}"})
                lasts += 1
            return reader.done

        wait_for("a line printed after the follower caught up", last_arrived, timeout=300,
                 interval=0.5)
        assert reader.error is None, reader.error
    lines = reader.lines
    # Up to the last line read: what the "lNNN" calls before it printed.
    printed = calls * per_call + int(lines[-1]["message"][1:4]) + 1
    gaps = [l for l in lines if l.get("stream") == "gap"]
    mine = [l for l in lines if re.match(r"^(c\d\d|l\d{3}) \d{6} ", l.get("message", ""))]
    assert gaps, "no gap line although the follower fell far behind"
    for g in gaps:
        assert set(g) == {"time", "request_id", "stream", "message", "skipped"}, g
        assert isinstance(g["skipped"], int) and g["skipped"] > 0, g
        assert f"{g['skipped']} log lines skipped" in g["message"], g
        assert g["request_id"] == "" and g["time"].endswith("Z"), g
    skipped = sum(g["skipped"] for g in gaps)
    # Every line printed was either sent or counted as skipped, in order.
    assert len(mine) + skipped >= printed, (len(mine), skipped, printed)
    assert len(mine) < printed
    order = [m["message"][:11] for m in mine if m["message"].startswith("c")]
    assert order == sorted(order), "lines out of order"


# ---------------------------------------------------------------- turns


def fill_socket(sock, one, most):
    """Sends copies of one on sock until the kernel takes no more (or most
    of them went). Returns the number of whole copies sent and the rest of
    the one cut in the middle (b"" if none), to send once the server reads
    again."""
    data = one * most
    sent = 0
    sock.setblocking(False)
    try:
        while sent < len(data):
            sent += sock.send(data[sent:sent + 65536])
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    cut = sent % len(one)
    return sent // len(one), one[cut:] if cut else b""


def test_a_pipelining_flood_does_not_starve_another_connection(server):
    """The server is stopped while one connection's flood of pipelined
    requests and another connection's single request reach its sockets;
    when it goes on, the single request is answered after at most one turn
    of the flood, not after all of it (counted by the server itself)."""
    srv = server()
    one = get_req("/healthz")
    with RawConn(srv.port, timeout=120) as flooder, RawConn(srv.port, timeout=120) as other:
        # Both accepted and read from before the server stops, the flooder
        # last: the kernel then reports the flooder's socket first once the
        # server goes on, the worst case for the lone request. (Reported
        # the other way round, the lone request would go first whatever the
        # server did: this test could then not fail, but never wrongly.)
        for c in (other, flooder):
            c.send(one)
            assert c.read_response().status_code == 200
        srv.send_signal(signal.SIGSTOP)
        try:
            queued, rest = fill_socket(flooder.sock, one, 200000)
            other.send(get_req("/metrics"))
        finally:
            srv.send_signal(signal.SIGCONT)
        flooder.send(rest)
        queued += bool(rest)
        assert queued > 20 * REQUESTS_PER_TURN, f"only {queued} requests reached the socket"
        r = other.read_response()
        assert r.status_code == 200, r.text[:500]
        m = re.search(r'^mayfly_http_requests_total\{route="/healthz",code="200"\} (\S+)$',
                      r.text, re.M)
        assert m, r.text[:2000]
        # Two answered before the stop; then at most a turn or two of the
        # flood before the lone request.
        before_it = float(m.group(1)) - 2
        assert before_it <= 2 * REQUESTS_PER_TURN, (
            f"the lone request waited for {before_it:.0f} of the {queued} pipelined ones")
        # The flood itself is answered in full, in order.
        for i in range(queued):
            assert flooder.read_response().status_code == 200, i


# ---------------------------------------------------------------- connections


class RawConnFrom(RawConn):
    """RawConn from another loopback source address: another client."""

    def __init__(self, port, source_ip, timeout=30):
        self.sock = connect_from(port, source_ip, timeout)
        self.buf = b""


def test_idle_connections_of_one_client_leave_room_for_others(server):
    """The audit's case, with the default bounds: 1,100 idle connections
    from one address used to take every slot (1,024), so /healthz answered
    503 to everyone else."""
    srv = server()
    idle = []
    try:
        for _ in range(1100):
            idle.append(socket.create_connection(("127.0.0.1", srv.port), timeout=60))
        with RawConnFrom(srv.port, "127.0.0.2", timeout=60) as other:
            other.send(get_req("/healthz"))
            r = other.read_response()
            assert r.status_code == 200, r.text
        # The connections over the per-client bound were told why.
        last = RawConn.__new__(RawConn)
        last.sock, last.buf = idle[-1], b""
        r = last.read_response()
        assert_error(r, 429, "throttled", "too many connections")
        assert r.headers.get("retry-after") == "1", r.headers
    finally:
        for s in idle:
            s.close()
    # Asked from the other address: the server may not have seen the
    # closes above yet, and 127.0.0.1 may still be over its bound.
    assert metric(srv, "mayfly_http_refused_total", source="127.0.0.2",
                  reason="client_connections") >= 1100 - 128


def test_connections_per_client(server):
    srv = server("--max-connections", "20", "--max-connections-per-client", "3")
    idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=30) for _ in range(3)]
    try:
        # The three are in (the server answers on one of them)...
        idle[0].sendall(get_req("/healthz"))
        assert idle[0].recv(65536).startswith(b"HTTP/1.1 200")
        # ... and a fourth from the same address is refused, five times.
        for _ in range(5):
            with RawConn(srv.port) as c:
                c.send(get_req("/healthz"))
                r = c.read_response()
                assert_error(r, 429, "throttled", "too many connections")
                assert r.headers.get("connection", "").lower() == "close"
                assert c.wait_closed(60)
        # Another address is not.
        with RawConnFrom(srv.port, "127.0.0.2") as other:
            other.send(get_req("/healthz"))
            assert other.read_response().status_code == 200
        assert metric(srv, "mayfly_http_refused_total", source="127.0.0.2",
                      reason="client_connections") == 5
        # Refusals are logged, not once each.
        logged = srv.stderr().count("refusing connections from 127.0.0.1")
        assert 1 <= logged < 5, srv.stderr()[-3000:]
        # A slot given back is a slot to use again.
        idle.pop().close()

        def gets_in():
            with RawConn(srv.port) as c:
                c.send(get_req("/healthz"))
                return c.read_response().status_code == 200
        wait_for("a connection once another closed", gets_in, timeout=60)
    finally:
        for s in idle:
            s.close()


def test_fresh_connection_gets_the_header_deadline(server):
    """A connection that never sends a request is closed after the header
    timeout, not the keep-alive one; one that has been answered waits for
    its next request under the keep-alive timeout."""
    srv = server("--header-timeout", "1", "--keepalive-timeout", "3600")
    with RawConn(srv.port) as fresh:
        assert fresh.wait_closed(60), "an idle fresh connection was kept for the keep-alive time"
        assert fresh.buf == b"", "a connection that sent nothing needs no 408"
    with RawConn(srv.port) as used:
        used.send(get_req("/healthz"))
        assert used.read_response().status_code == 200
        # Three times the header timeout later it is still open.
        assert not used.wait_closed(3), "an answered connection got the header deadline"
        used.send(get_req("/healthz"))
        assert used.read_response().status_code == 200


# ---------------------------------------------------------------- bodies


def put_head(name, length, extra=""):
    return (f"PUT /v1/functions/{name} HTTP/1.1\r\nHost: mayfly\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n").encode()


def body_bytes(srv):
    return metric(srv, "mayfly_http_request_body_bytes")


def test_bodies_being_received_are_bounded_across_connections(server):
    srv = server("--max-buffered-body-mb", "8")
    big = 6 << 20
    with RawConn(srv.port, timeout=60) as a:
        # A holds 6 MiB of the 8 from its head on, with 1 MiB sent so far.
        a.send(put_head("budget-a", big))
        a.send(b"x" * (1 << 20))
        wait_for("A's body counted", lambda: body_bytes(srv) == big, timeout=60)
        # Another 6 MiB would not fit: refused at its head, to retry later.
        with RawConn(srv.port, timeout=60) as b:
            b.send(put_head("budget-b", big))
            r = b.read_response()
            assert_error(r, 503, "unavailable", "try again")
            assert r.headers.get("retry-after") == "1", r.headers
            assert r.headers.get("connection", "").lower() == "close"
            assert b.wait_closed(60)
        # A body larger than the whole bound could never fit: 413 at once.
        with RawConn(srv.port, timeout=60) as c:
            c.send(put_head("budget-c", 9 << 20))
            assert_error(c.read_response(), 413, "payload_too_large", "holds at once")
        # Small bodies still fit beside A's.
        r = requests.put(f"{srv.url}/v1/functions/budget-d", json=fn_body(), timeout=60)
        assert r.status_code == 201, r.text
        # A chunked body counts as it comes, and is refused once over.
        chunk = b"x" * 65536
        wire = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(48)) + b"0\r\n\r\n"
        with RawConn(srv.port, timeout=60) as d:
            d.send(b"PUT /v1/functions/budget-e HTTP/1.1\r\nHost: mayfly\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            d.send_body_until_answered(wire)
            try:
                r = d.read_response()
            except (EOFError, ConnectionResetError) as e:
                pytest.fail(f"no answer to a chunked body over the bound ({e!r})")
            assert_error(r, 503, "unavailable")
        # A finishes (its body is no JSON): its 6 MiB are given back.
        a.send(b"x" * (big - (1 << 20)))
        assert_error(a.read_response(), 400, "bad_request")
    wait_for("the bound given back", lambda: body_bytes(srv) == 0, timeout=60)
    r = requests.put(f"{srv.url}/v1/functions/budget-b", data=b"x" * big,
                     headers={"Content-Type": "application/json"}, timeout=60)
    assert_error(r, 400, "bad_request")
    assert metric(srv, "mayfly_http_refused_total", reason="buffered_bodies") == 2
