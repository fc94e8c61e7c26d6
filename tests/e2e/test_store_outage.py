"""The database goes away: PostgreSQL is stopped for about ten seconds
under two servers (each on a database of its own on it, as two nodes lose
one server together), while requests keep coming.

While it is away, what must be written before it is answered (a deploy,
an async event's acceptance, a KV write, a topic's publish, and the same
through Lambda's API) is answered 503 at once, with the error shape and a
message that says the store cannot be reached; never a 500, never a hang.
A warm synchronous call of a function the server knows answers 200: its
record waits in the server's writer. Once PostgreSQL is back, each server
connects again on its own and serves writes again without a restart, and
every event that got a 202 (before and after) ends with a success record,
the calls made during the outage with theirs; the log says the store was
lost and came back.

Every wait is polled against a deadline meant for a server that never
gets there, never for one that is slow: only wrong behaviour fails."""

import re
import time

import pytest
import requests

from conftest import ECHO_PY, database, deploy_py, fn_body, invoke_ok, unique, wait_for

# How long PostgreSQL stays away: the ten seconds.
OUTAGE_S = 10

SLOW_PY = """
import time

def handler(event, context):
    time.sleep(0.3)
    return {'done': event}
"""


def start_on(server, url):
    return server("--store", url, "--sandbox-pool", "0", "--zygotes", "0",
                  "--retry-base-ms", "200")


def enqueue(srv, name, event):
    return requests.post(f"{srv.url}/v1/functions/{name}/invoke", json=event,
                         headers={"X-Mayfly-Invocation-Type": "Event"}, timeout=60)


def assert_unavailable(r, what):
    """503 in /v1's error shape, saying the store cannot be reached."""
    assert r.status_code == 503, f"{what}: HTTP {r.status_code} {r.text}"
    err = r.json().get("error") or {}
    assert err.get("code") == "unavailable", f"{what}: {r.text}"
    message = err.get("message", "")
    assert "the store (PostgreSQL) cannot be reached" in message, f"{what}: {r.text}"
    assert "retry later" in message, f"{what}: {r.text}"


def status_of(srv, rid):
    r = requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=60)
    if r.status_code != 200:
        return None
    return r.json().get("status")


class Node:
    """A server with a fast function (echo), a slow one that keeps the
    queue busy, a topic with a subscriber, and the request ids it
    accepted."""

    def __init__(self, srv):
        self.srv = srv
        self.echo = unique("outage-echo")
        self.slow = unique("outage-slow")
        self.topic = unique("outage-topic")
        self.kv = unique("outage-kv").lower()
        deploy_py(srv, self.echo, ECHO_PY)
        deploy_py(srv, self.slow, SLOW_PY, max_concurrency=2)
        r = requests.put(f"{srv.url}/v1/topics/{self.topic}", timeout=60)
        assert r.status_code == 201, r.text
        r = requests.post(f"{srv.url}/v1/topics/{self.topic}/subscriptions",
                          json={"function": self.echo}, timeout=60)
        assert r.status_code == 201, r.text
        self.accepted = []   # request ids that got a 202
        self.sync_ids = []   # warm calls made while the store was away

    def accept(self, name, event):
        r = enqueue(self.srv, name, event)
        assert r.status_code == 202, f"enqueue {name}: HTTP {r.status_code} {r.text}"
        self.accepted.append(r.json()["request_id"])

    def writes_while_away(self, n):
        """Every write a client waits for: 503, at once."""
        srv = self.srv
        r = requests.put(f"{srv.url}/v1/functions/{unique('outage-new')}", json=fn_body(),
                         timeout=60)
        assert_unavailable(r, "a deploy")
        assert_unavailable(enqueue(srv, self.echo, {"during": n}), "an async event")
        r = requests.put(f"{srv.url}/v1/kv/{self.kv}/k{n}", data=b"v",
                         headers={"Content-Type": "text/plain"}, timeout=60)
        assert_unavailable(r, "a KV write")
        r = requests.post(f"{srv.url}/v1/topics/{self.topic}/publish",
                          json={"message": f"during {n}"}, timeout=60)
        assert_unavailable(r, "a publish")
        r = requests.post(f"{srv.url}/2015-03-31/functions/{self.echo}/invocations",
                          json={"lambda": n}, headers={"X-Amz-Invocation-Type": "Event"},
                          timeout=60)
        assert r.status_code == 503, f"Lambda's async invoke: HTTP {r.status_code} {r.text}"
        assert r.headers.get("x-amzn-ErrorType") == "ServiceException", r.headers
        assert "cannot be reached" in r.json().get("message", ""), r.text

    def health(self):
        r = requests.get(f"{self.srv.url}/healthz", timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    def warm_call(self, n):
        r = invoke_ok(self.srv, self.echo, {"warm": n})
        assert r.json() == {"echo": {"warm": n}}
        self.sync_ids.append(r.headers["X-Mayfly-Request-Id"])

    def serves_writes(self):
        """Whether a deploy goes through again (polled after the outage)."""
        r = requests.put(f"{self.srv.url}/v1/kv/{self.kv}/back", data=b"v",
                         headers={"Content-Type": "text/plain"}, timeout=60)
        if r.status_code == 503:
            return False
        assert r.status_code in (200, 201), f"a KV write after: HTTP {r.status_code} {r.text}"
        return True


def test_nodes_ride_out_a_database_that_goes_away(pg_server, server):
    a = Node(start_on(server, database(pg_server.url, "mayfly_outage_a")))
    b = Node(start_on(server, database(pg_server.url, "mayfly_outage_b")))
    # A third is stopped while the database is away, and started again
    # once it is back: it stops cleanly, and what it accepted still runs.
    c = Node(start_on(server, database(pg_server.url, "mayfly_outage_c")))
    for node in (a, b, c):
        node.warm_call(0)
        node.sync_ids.clear()
        for i in range(20):
            node.accept(node.slow, {"before": i})

    pg_server.pause()
    away_since = time.monotonic()
    n = 0
    while time.monotonic() - away_since < OUTAGE_S:
        n += 1
        for node in (a, b):
            node.writes_while_away(n)
            node.warm_call(n)
            # Alive all along (it serves warm calls), and saying why not more.
            health = node.health()
            assert health["store"] == "unreachable" and health["store_down_since"], health
        if n == 2:
            c.writes_while_away(n)
            c.srv.stop()  # exit 0, within a deadline for a hang
        time.sleep(0.5)
    pg_server.resume()
    c.srv.start()

    for node in (a, b, c):
        wait_for("writes served again after PostgreSQL came back", node.serves_writes,
                 timeout=180, interval=0.2)
        for i in range(5):
            node.accept(node.slow, {"after": i})
        r = requests.post(f"{node.srv.url}/v1/topics/{node.topic}/publish",
                          json={"message": "after"}, timeout=60)
        assert r.status_code == 202, r.text
        node.accepted += [d["request_id"] for d in r.json()["deliveries"]]
        assert node.serves_writes()
        assert node.health()["store"] == "up"

    for node in (a, b, c):
        for rid in node.accepted:
            wait_for(f"a success record of accepted event {rid}",
                     lambda rid=rid, node=node: status_of(node.srv, rid) == "success",
                     timeout=300, interval=0.2)
        # The warm calls' records waited in the writer, and are there now.
        for rid in node.sync_ids:
            wait_for(f"the record of warm call {rid}",
                     lambda rid=rid, node=node: status_of(node.srv, rid) == "success",
                     timeout=120, interval=0.2)
    for node in (a, b):
        log = node.srv.stderr()
        assert "store: lost PostgreSQL (" in log, node.srv.logs()
        assert "store: PostgreSQL is back after" in log, node.srv.logs()
        # Once each: the store went away once.
        assert log.count("store: lost PostgreSQL (") == 1, log
        assert log.count("store: PostgreSQL is back after") == 1, log
        # No request met an internal error (a 500 is logged by the API).
        assert not re.search(r"ERROR\s+(api|lambda): ", log), log
    for node in (a, b, c):
        node.srv.stop()  # and a clean exit (no sanitizer's complaint)


@pytest.fixture(autouse=True)
def _pg_back(pg_server):
    """Whatever a test did, PostgreSQL runs after it."""
    yield
    try:
        pg_server.resume()
    except AssertionError:
        pass  # it ran already
