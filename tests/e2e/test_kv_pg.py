"""The key-value stores' reads on a server whose store is PostgreSQL
(`mayfly server --store postgresql://…`), where they are made by reader
threads with connections of their own rather than on the event loop
(docs/state.md): a get, a batch get, a listing page by page, a store's
stats and the list of stores answer as on SQLite; a missing key is 404; a
read made right after an acknowledged write sees it, every time; and a read
held up in the database (a table lock a psql session holds) does not hold
up the server, which goes on answering other requests meanwhile.

test_kv.py covers the API in full on SQLite; this module is the same
reads' path on PostgreSQL. A throwaway PostgreSQL serves the module."""

import base64
import subprocess
import threading
from urllib.parse import quote

import pytest
import requests

from conftest import assert_error, database, psql, unique, wait_for


def start_on(server, url):
    return server("--store", url, "--sandbox-pool", "0", "--zygotes", "0")


@pytest.fixture(scope="module")
def srv(pg, module_server_factory):
    return start_on(module_server_factory, database(pg, "mayfly_kv_reads"))


def kv_url(srv, store, key=None, suffix=""):
    url = f"{srv.url}/v1/kv/{store}"
    if key is not None:
        url += "/" + quote(key, safe="")
    return url + suffix


def put_ok(srv, store, key, data, headers=None):
    r = requests.put(kv_url(srv, store, key), data=data, headers=headers or {}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["version"]


def get(srv, store, key):
    return requests.get(kv_url(srv, store, key), timeout=60)


def stats(srv, store):
    r = requests.get(kv_url(srv, store, suffix="/_stats"), timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_get_answers_the_bytes_type_version_and_expiry(srv):
    store = unique("pg-get")
    body = bytes(range(256))
    v = put_ok(srv, store, "user/42", body, headers={"Content-Type": "image/x-test"})
    r = get(srv, store, "user/42")
    assert r.status_code == 200, r.text
    assert r.content == body
    assert r.headers["Content-Type"] == "image/x-test"
    assert r.headers["ETag"] == f'"{v}"'
    assert "X-Mayfly-Expires" not in r.headers
    r = requests.put(kv_url(srv, store, "brief"), data=b"soon", params={"ttl": "3600"},
                     timeout=60)
    assert r.status_code == 200, r.text
    assert "X-Mayfly-Expires" in get(srv, store, "brief").headers


def test_missing_keys_and_stores_are_404(srv):
    store = unique("pg-404")
    assert_error(get(srv, store, "nothing"), 404, "not_found")
    put_ok(srv, store, "there", b"1")
    assert_error(get(srv, store, "not-there"), 404, "not_found")
    r = requests.delete(kv_url(srv, store, "there"), timeout=60)
    assert r.status_code == 204, r.text
    assert_error(get(srv, store, "there"), 404, "not_found")


def test_batch_get_reads_every_key_in_order(srv):
    store = unique("pg-batch")
    va = put_ok(srv, store, "a", b"\x00\x01bin", headers={"Content-Type": "app/x"})
    vb = put_ok(srv, store, "b", b"text")
    r = requests.post(kv_url(srv, store, suffix="/_batch"),
                      json={"get": ["b", "missing", "a"]}, timeout=60)
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items == [
        {"key": "b", "found": True, "value_base64": base64.b64encode(b"text").decode(),
         "content_type": "application/octet-stream", "version": vb},
        {"key": "missing", "found": False, "value_base64": None, "content_type": None,
         "version": None},
        {"key": "a", "found": True, "value_base64": base64.b64encode(b"\x00\x01bin").decode(),
         "content_type": "app/x", "version": va},
    ]


def test_list_pages_through_a_prefix(srv):
    store = unique("pg-ls")
    for i in range(25):
        put_ok(srv, store, f"k{i:02d}", b"v" * i)
    put_ok(srv, store, "other", b"x")
    seen, cursor, pages = [], None, 0
    while True:
        params = {"prefix": "k", "limit": "10", **({"cursor": cursor} if cursor else {})}
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
    doc = requests.get(kv_url(srv, store), timeout=60).json()
    assert [k["key"] for k in doc["keys"]][-1] == "other" and doc["next"] is None
    assert_error(requests.get(kv_url(srv, store), params={"cursor": "nonsense"}, timeout=60),
                 400, "bad_request", "cursor")


def test_stats_count_reads_and_writes_and_stores_list_them(srv):
    store = unique("pg-stats")
    put_ok(srv, store, "a", b"12345")
    put_ok(srv, store, "b", b"123")
    assert get(srv, store, "a").status_code == 200
    assert get(srv, store, "gone").status_code == 404
    r = requests.post(kv_url(srv, store, suffix="/_batch"), json={"get": ["a", "b", "c"]},
                      timeout=60)
    assert r.status_code == 200, r.text
    assert requests.get(kv_url(srv, store), timeout=60).status_code == 200
    s = stats(srv, store)
    # Two gets, three keys of the batch, one listing.
    assert s == {"store": store, "keys": 2, "bytes": 2 + 5 + 3, "reads": 6, "writes": 2,
                 "max_bytes": s["max_bytes"], "max_keys": s["max_keys"]}
    assert s["max_bytes"] > 0 and s["max_keys"] > 0
    r = requests.get(f"{srv.url}/v1/kv", timeout=60)
    assert r.status_code == 200, r.text
    assert {"name": store, "tenant": "default", "keys": 2, "bytes": 10} in r.json()["stores"]
    # A store that holds nothing: zeros, and not listed.
    empty = unique("pg-empty")
    assert stats(srv, empty)["keys"] == 0
    assert empty not in [x["name"] for x in requests.get(f"{srv.url}/v1/kv", timeout=60)
                         .json()["stores"]]


def test_a_read_right_after_an_acknowledged_write_sees_it(srv):
    """The write is committed by the writer's connection, the read made by
    a reader thread's: each read must see the write its client was just
    told of, whichever reader makes it."""
    store = unique("pg-ryw")
    session = requests.Session()
    for i in range(100):
        r = session.put(kv_url(srv, store, "k"), data=str(i).encode(), timeout=60)
        assert r.status_code == 200, r.text
        r = session.get(kv_url(srv, store, "k"), timeout=60)
        assert r.status_code == 200 and r.content == str(i).encode(), (i, r.status_code, r.text)
        r = session.post(kv_url(srv, store, "n", "/incr"), timeout=60)
        assert r.status_code == 200, r.text
        r = session.post(kv_url(srv, store, suffix="/_batch"), json={"get": ["k", "n"]},
                         timeout=60)
        items = r.json()["items"]
        assert [base64.b64decode(x["value_base64"]) for x in items] == \
            [str(i).encode(), str(i + 1).encode()], (i, items)
    r = session.delete(kv_url(srv, store, "k"), timeout=60)
    assert r.status_code == 204
    assert session.get(kv_url(srv, store, "k"), timeout=60).status_code == 404
    assert stats(srv, store)["keys"] == 1


def test_a_read_held_up_in_the_database_does_not_hold_up_the_server(pg, server):
    """A psql session locks the kv table, so that a KV read waits for it
    in PostgreSQL for as long as the test likes. Meanwhile the server still
    answers; the read's answer comes once the lock is let go. Nothing here
    is timed: the lock is held until the test has seen the server answer."""
    url = database(pg, "mayfly_kv_held")
    srv = start_on(server, url)
    store = unique("pg-held")
    put_ok(srv, store, "k", b"value")
    holder = subprocess.Popen(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    answer = {}

    def read():
        answer["r"] = requests.get(kv_url(srv, store, "k"), timeout=300)

    reader = threading.Thread(target=read)
    try:
        holder.stdin.write("BEGIN;\nLOCK TABLE kv IN ACCESS EXCLUSIVE MODE;\n")
        holder.stdin.flush()
        wait_for("psql to hold the lock", lambda: psql(
            url, "SELECT count(*) FROM pg_locks WHERE relation = 'kv'::regclass"
                 " AND mode = 'AccessExclusiveLock' AND granted") == "1")
        reader.start()
        # The get's statement (store_kv_get's) waits for the lock.
        wait_for("the read to wait for the lock", lambda: psql(
            url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                 " AND wait_event_type = 'Lock' AND query LIKE '%FROM kv WHERE store = $1"
                 " AND key = $2%'") != "0", timeout=120)
        # The loop is free: the server answers, while the read still waits.
        for _ in range(3):
            r = requests.get(f"{srv.url}/healthz", timeout=60)
            assert r.status_code == 200
            r = requests.get(f"{srv.url}/v1/functions", timeout=60)
            assert r.status_code == 200, r.text
        assert reader.is_alive() and "r" not in answer
    finally:
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        holder.wait(timeout=60)
    reader.join(timeout=300)
    assert holder.returncode == 0, holder.stderr.read()
    r = answer["r"]
    assert r.status_code == 200 and r.content == b"value", r.text
