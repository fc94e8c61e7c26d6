"""The HTTP/1.1 server itself: keep-alive, pipelining, chunked bodies, the
bounds on headers, bodies, connections and slow clients, routing errors,
and the metrics it keeps about itself."""

import json
import re
import socket
import time

import pytest
import requests

from conftest import RawConn, assert_error, fn_body, py_zip, raw_request


def get_req(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: mayfly\r\n{extra}\r\n".encode()


def read_or_fail(conn):
    """Reads a response a client may only get if the server, refusing a
    body, closes gracefully instead of resetting the connection."""
    try:
        return conn.read_response()
    except (EOFError, ConnectionResetError) as e:
        pytest.fail(f"no response before the connection ended ({e!r}); a server refusing "
                    "a body must let the client read its answer")


def test_healthz(shared_server):
    r = requests.get(f"{shared_server.url}/healthz", timeout=10)
    assert r.status_code == 200


def test_keep_alive_serves_several_requests_on_one_connection(shared_server):
    with RawConn(shared_server.port) as c:
        for _ in range(3):
            c.send(get_req("/healthz"))
            r = c.read_response()
            assert r.status_code == 200
            assert r.headers.get("connection", "").lower() != "close"
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(f"{shared_server.url}/healthz", timeout=10).status_code == 200


def test_pipelined_requests_are_answered_in_order(shared_server):
    with RawConn(shared_server.port) as c:
        c.send(get_req("/healthz") + get_req("/v1/functions/pipelined-missing")
               + get_req("/healthz"))
        first, second, third = c.read_response(), c.read_response(), c.read_response()
    assert first.status_code == 200
    assert_error(second, 404, "not_found", "pipelined-missing")
    assert third.status_code == 200


def test_connection_close_is_honoured(shared_server):
    with RawConn(shared_server.port) as c:
        c.send(get_req("/healthz", "Connection: close\r\n"))
        assert c.read_response().status_code == 200
        assert c.wait_closed(60), "the server kept a Connection: close connection open"


def test_chunked_request_body_creates_a_function(shared_server):
    body = json.dumps(fn_body()).encode()

    def chunks():
        for i in range(0, len(body), 50):
            yield body[i:i + 50]

    r = requests.put(f"{shared_server.url}/v1/functions/chunked", data=chunks(),
                     headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "chunked"


def test_header_block_over_16_kib_is_431(shared_server):
    big = "X-Big: " + "a" * (17 << 10) + "\r\n"
    with RawConn(shared_server.port) as c:
        c.send(get_req("/healthz", big))
        r = c.read_response()
    assert_error(r, 431, "header_too_large")
    assert requests.get(f"{shared_server.url}/healthz", timeout=10).status_code == 200


def test_many_small_headers_over_16_kib_are_431(shared_server):
    many = "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(200))
    with RawConn(shared_server.port) as c:
        c.send(get_req("/healthz", many))
        assert_error(c.read_response(), 431, "header_too_large")


def test_unknown_path_is_404_json(shared_server):
    r = requests.get(f"{shared_server.url}/no/such/path", timeout=10)
    assert_error(r, 404, "not_found")


def test_wrong_method_is_405(shared_server):
    r = requests.patch(f"{shared_server.url}/v1/functions/x", json={}, timeout=10)
    assert_error(r, 405, "method_not_allowed")
    allow = r.headers.get("Allow", "")
    for m in ("GET", "HEAD", "PUT", "DELETE"):
        assert m in allow, f"Allow header {allow!r} lacks {m}"
    assert allow.count("HEAD") == 1, allow
    r = requests.post(f"{shared_server.url}/healthz", timeout=10)
    assert_error(r, 405, "method_not_allowed")


def test_head_is_get_without_the_body(shared_server):
    name = f"head-{time.monotonic_ns()}"
    r = requests.put(f"{shared_server.url}/v1/functions/{name}", json=fn_body(), timeout=30)
    assert r.status_code == 201, r.text
    for path in ("/healthz", f"/v1/functions/{name}", f"/v1/functions/{name}/code"):
        got = requests.get(f"{shared_server.url}{path}", timeout=30)
        assert got.status_code == 200, (path, got.text)
        with RawConn(shared_server.port) as c:
            # HEAD, then GET on the same connection: the HEAD's answer is a
            # head with the GET's length and no body, so the next bytes are
            # the GET's answer.
            c.send(get_req(path).replace(b"GET ", b"HEAD ", 1) + get_req("/healthz"))
            head = c.read_response(head_only=True)
            assert head.status_code == 200, (path, head.status_code)
            assert int(head.headers["content-length"]) == len(got.content), (path, head.headers)
            assert head.headers["content-type"] == got.headers["Content-Type"], path
            after = c.read_response()
            assert after.status_code == 200 and after.json() == requests.get(
                f"{shared_server.url}/healthz", timeout=10).json(), (path, after.body[:200])
    # A missing one is 404 with the error's length and no body either.
    with RawConn(shared_server.port) as c:
        c.send(get_req("/v1/functions/head-missing").replace(b"GET ", b"HEAD ", 1)
               + get_req("/healthz"))
        assert c.read_response(head_only=True).status_code == 404
        assert c.read_response().status_code == 200
    # A stream's head (a log followed, which never ends): the head, then
    # the server closes the connection, sending nothing of the body.
    with RawConn(shared_server.port) as c:
        c.send(get_req(f"/v1/functions/{name}/logs?follow=1").replace(b"GET ", b"HEAD ", 1))
        head = c.read_response(head_only=True)
        assert head.status_code == 200 and head.headers.get("connection") == "close", head.headers
        assert c.wait_closed(60), "the server kept a HEAD of a stream open"
        assert c.buf == b"", c.buf[:200]
    assert requests.get(f"{shared_server.url}/healthz", timeout=10).status_code == 200


def test_garbage_is_400_and_the_server_stays_up(shared_server):
    with RawConn(shared_server.port) as c:
        c.send(b"\x00\x01GARBAGE\r\n\r\n")
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            pytest.fail("the server closed the connection without a 400")
        assert r.status_code == 400
        assert c.wait_closed(60), "a connection that sent garbage should be closed"
    assert requests.get(f"{shared_server.url}/healthz", timeout=10).status_code == 200


def test_sync_event_over_6_mib_is_413(shared_server):
    # A 6 MiB event to parse and echo, after a cold start: a timeout a
    # loaded machine cannot reach.
    assert requests.put(f"{shared_server.url}/v1/functions/inv", json=fn_body(timeout_s=120),
                        timeout=30).status_code == 201
    big = b'{"pad":"' + b"x" * (6 << 20) + b'"}'
    r = raw_request(shared_server.port, "POST", "/v1/functions/inv/invoke", body=big,
                    headers={"Content-Type": "application/json"}, timeout=30)
    assert_error(r, 413, "payload_too_large")
    # The server is fine, and an event just under the bound still runs.
    ok = b'{"pad":"' + b"x" * ((6 << 20) - 16) + b'"}'
    r = requests.post(f"{shared_server.url}/v1/functions/inv/invoke", data=ok, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert "X-Mayfly-Function-Error" not in r.headers, r.text[:500]
    assert len(r.json()["pad"]) == (6 << 20) - 16


def test_metrics_count_requests_by_route_and_code(shared_server):
    for _ in range(2):
        requests.get(f"{shared_server.url}/healthz", timeout=10)
    r = requests.get(f"{shared_server.url}/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    m = re.search(r'^mayfly_http_requests_total\{route="/healthz",code="200"\} (\d+(?:\.\d+)?)$',
                  r.text, re.M)
    assert m, r.text[:2000]
    assert float(m.group(1)) >= 2
    assert "mayfly_http_request_duration_seconds_bucket" in r.text
    assert re.search(r"^# TYPE mayfly_http_requests_total counter$", r.text, re.M)
    assert re.search(r"^# TYPE mayfly_http_request_duration_seconds histogram$", r.text, re.M)


def test_metrics_measure_the_event_loop(shared_server):
    """The server's own measure of its loop: iterations by how long each ran
    callbacks, the loop thread's CPU and the process's, all moving forward
    as it serves requests."""
    def samples():
        text = requests.get(f"{shared_server.url}/metrics", timeout=10).text
        for t in ("mayfly_event_loop_busy_seconds histogram",
                  "mayfly_event_loop_cpu_seconds_total counter",
                  "process_cpu_seconds_total counter"):
            assert re.search(rf"^# TYPE {t}$", text, re.M), text[:2000]
        return {m[0]: float(m[1]) for m in re.findall(
            r'^((?:mayfly_event_loop|process_cpu)\w*(?:\{le="[^"]+"\})?) (\S+)$', text, re.M)}
    before = samples()
    for _ in range(20):
        requests.get(f"{shared_server.url}/healthz", timeout=10)
    after = samples()
    loop, proc = (after[k] for k in ("mayfly_event_loop_cpu_seconds_total",
                                     "process_cpu_seconds_total"))
    assert 0 < loop <= proc, after
    assert loop > before["mayfly_event_loop_cpu_seconds_total"], (before, after)
    # Twenty requests take at least twenty iterations; +Inf holds them all.
    count = after["mayfly_event_loop_busy_seconds_count"]
    assert count >= before["mayfly_event_loop_busy_seconds_count"] + 20, (before, after)
    assert after['mayfly_event_loop_busy_seconds_bucket{le="+Inf"}'] == count, after
    assert after["mayfly_event_loop_busy_seconds_sum"] > 0, after


def test_metrics_use_the_route_pattern_not_the_path(shared_server):
    for name in ("metric-a", "metric-b"):
        requests.get(f"{shared_server.url}/v1/functions/{name}", timeout=10)
    text = requests.get(f"{shared_server.url}/metrics", timeout=10).text
    assert "metric-a" not in text, "a label per function name would grow without bound"


# ---------------------------------------------------------------- bounds


def test_body_over_the_route_limit_is_413(server):
    srv = server("--max-zip-mb", "1")
    body = b"x" * (7 << 20)
    head = (
        "PUT /v1/functions/huge HTTP/1.1\r\nHost: mayfly\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with RawConn(srv.port) as c:
        c.send(head)
        c.send_body_until_answered(body)
        r = read_or_fail(c)
    assert_error(r, 413, "payload_too_large")
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200


def test_chunked_body_over_the_route_limit_is_413(server):
    srv = server("--max-zip-mb", "1")
    chunk = b"x" * 65536
    wire = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(112)) + b"0\r\n\r\n"
    head = (b"PUT /v1/functions/huge HTTP/1.1\r\nHost: mayfly\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    with RawConn(srv.port) as c:
        c.send(head)
        c.send_body_until_answered(wire)
        assert_error(read_or_fail(c), 413, "payload_too_large")


def test_max_connections(server):
    srv = server("--max-connections", "3")
    idle = [RawConn(srv.port, timeout=60) for _ in range(3)]
    try:
        # Each answered once (and kept alive): the server holds all three.
        for c in idle:
            c.send(get_req("/healthz"))
            assert c.read_response().status_code == 200
        with RawConn(srv.port, timeout=60) as fourth:
            try:
                fourth.send(get_req("/healthz"))
                r = fourth.read_response()
                assert r.status_code == 503, f"4th connection got {r.status_code}"
                assert_error(r, 503, "unavailable")
            except (EOFError, ConnectionResetError, BrokenPipeError):
                pass  # closed at once: also a refusal
            except socket.timeout:
                pytest.fail("the 4th connection was neither answered nor closed")
    finally:
        for s in idle:
            s.close()

    # The server notices the closes on its own time; a deadline only for a
    # server that never does.
    deadline = time.monotonic() + 60
    while True:
        try:
            r = requests.get(f"{srv.url}/healthz", timeout=10)
            if r.status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "requests fail after the idle sockets closed"
        time.sleep(0.05)


def test_slow_client_is_closed_after_the_header_timeout(server):
    srv = server("--header-timeout", "1")
    with RawConn(srv.port) as c:
        c.send(b"GET /heal")
        # Closed by the 1 s timeout: the wait is only a deadline for a server
        # that never closes it.
        assert c.wait_closed(60), "a half-sent request line kept its connection open"
        if c.buf:
            assert c.buf.startswith(b"HTTP/1.1 408"), c.buf[:100]
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200


def test_slow_body_is_closed_after_the_header_timeout(server):
    """The timeout covers the whole request, not each read: a client that
    trickles bytes cannot hold a connection forever."""
    srv = server("--header-timeout", "1")
    with RawConn(srv.port) as c:
        c.send(b"GET /healthz HTTP/1.1\r\n")
        closed = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                c.send(b"X-A: b\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if c.wait_closed(0.3):
                closed = True
                break
        assert closed, "a client trickling header lines kept its connection open"


def test_idle_keepalive_connection_is_closed(server):
    srv = server("--keepalive-timeout", "1")
    with RawConn(srv.port) as c:
        c.send(get_req("/healthz"))
        assert c.read_response().status_code == 200
        assert c.wait_closed(60), "an idle keep-alive connection was not closed"


def test_upload_with_many_settings_round_trips(shared_server):
    body = fn_body(py_zip({"data.txt": "x" * 100_000}), env={f"K{i}": "v" * 50 for i in range(50)})
    r = raw_request(shared_server.port, "PUT", "/v1/functions/roundtrip",
                    json.dumps(body).encode(), {"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert len(r.json()["env"]) == 50
