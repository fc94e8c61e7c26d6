"""Changes a shared database holds up do not hold up the server.

On PostgreSQL every write is a round trip, and a busy or locked table can
make one wait for as long as it likes. A function's delete, a function
URL's create and delete and a volume's create and delete are written by the
records' writer, off the event loop: while one waits, the server answers
everything else, and a change of the same function made meanwhile is a
409, as on Lambda while an update is in progress.

Each test makes a write wait by holding a lock on its table from a psql
session, and lets it go once it has seen what it came to see. Nothing here
is timed: the lock is held until the server has answered."""

import contextlib
import subprocess
import threading

import pytest
import requests

from conftest import ECHO_PY, database, deploy_py, invoke_ok, psql, unique, wait_for


@pytest.fixture(scope="module")
def db(pg):
    return database(pg, "mayfly_held")


@pytest.fixture(scope="module")
def srv(db, module_server_factory):
    return module_server_factory("--store", db, "--sandbox-pool", "0", "--zygotes", "0")


class Held:
    """A psql session holding ACCESS EXCLUSIVE on table until released."""

    def __init__(self, url, table):
        self.url, self.table = url, table
        self.proc = subprocess.Popen(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1"],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n")
        self.proc.stdin.flush()
        wait_for(f"psql to lock {table}", lambda: psql(
            url, f"SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass"
                 " AND mode = 'AccessExclusiveLock' AND granted") == "1")

    def wait_for_statement(self, like):
        """Until a statement matching like waits for the lock."""
        wait_for(f"a statement like {like!r} to wait for the lock", lambda: psql(
            self.url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                      f" AND wait_event_type = 'Lock' AND query LIKE '{like}'") != "0",
                 timeout=120)

    def release(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        assert self.proc.returncode == 0, self.proc.stderr.read()


class Background:
    """One request made on a thread of its own; its response in .response."""

    def __init__(self, method, url, **kwargs):
        self.response = None

        def run():
            self.response = requests.request(method, url, timeout=300, **kwargs)
        self.thread = threading.Thread(target=run)
        self.thread.start()

    def pending(self):
        return self.thread.is_alive() and self.response is None

    def result(self):
        self.thread.join(timeout=300)
        assert self.response is not None, "the request got no answer"
        return self.response


@contextlib.contextmanager
def held_up(db, table, like, method, url, **kwargs):
    """A request whose write (a statement like like) waits for table,
    which a psql session holds until the block ends; the block gets the
    Background request, still waiting at its end."""
    held = Held(db, table)
    try:
        request = Background(method, url, **kwargs)
        held.wait_for_statement(like)
        yield request
        assert request.pending()
    finally:
        held.release()


def still_answers(srv, warm):
    """The loop is free: the server answers reads and a warm call."""
    assert requests.get(f"{srv.url}/healthz", timeout=60).status_code == 200
    r = requests.get(f"{srv.url}/v1/functions", timeout=60)
    assert r.status_code == 200, r.text
    assert invoke_ok(srv, warm, {"n": 1}).json() == {"echo": {"n": 1}}


def test_a_held_delete_leaves_the_server_answering_and_its_function_busy(srv, db):
    warm, name = unique("warm"), unique("doomed")
    deploy_py(srv, warm, ECHO_PY)
    deploy_py(srv, name, ECHO_PY)
    invoke_ok(srv, warm)
    with held_up(db, "functions", "DELETE FROM functions%", "DELETE",
                 f"{srv.url}/v1/functions/{name}") as delete:
        still_answers(srv, warm)
        # The same function changed meanwhile: a conflict, not a wait.
        r = requests.put(f"{srv.url}/v1/functions/{name}", json={"timeout_s": 9}, timeout=60)
        assert r.status_code == 409 and r.json()["error"]["code"] == "conflict", r.text
        assert "being changed by another request" in r.json()["error"]["message"]
        r = requests.delete(f"{srv.url}/v1/functions/{name}", timeout=60)
        assert r.status_code == 409, r.text
        # Until its row is gone, it is served as it was.
        assert invoke_ok(srv, name, {"still": True}).json() == {"echo": {"still": True}}
    assert delete.result().status_code == 204, delete.response.text
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).status_code == 404
    assert psql(db, f"SELECT count(*) FROM functions WHERE name = '{name}'") == "0"


def test_a_delete_while_an_update_is_held_is_a_conflict(srv, db):
    name = unique("updated")
    deploy_py(srv, name, ECHO_PY)
    with held_up(db, "functions", "INSERT INTO functions%", "PUT",
                 f"{srv.url}/v1/functions/{name}", json={"memory_mb": 256}) as update:
        r = requests.delete(f"{srv.url}/v1/functions/{name}", timeout=60)
        assert r.status_code == 409, r.text
        # The Lambda API says it its way.
        r = requests.delete(f"{srv.url}/2015-03-31/functions/{name}", timeout=60)
        assert r.status_code == 409, r.text
        assert r.headers["x-amzn-ErrorType"] == "ResourceConflictException", r.text
    assert update.result().status_code == 200, update.response.text
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()["memory_mb"] == 256
    r = requests.delete(f"{srv.url}/v1/functions/{name}", timeout=60)
    assert r.status_code == 204, r.text


def test_held_url_changes_leave_the_server_answering(srv, db):
    warm, name = unique("warm"), unique("served")
    deploy_py(srv, warm, ECHO_PY)
    deploy_py(srv, name, ECHO_PY)
    with held_up(db, "function_urls", "INSERT INTO function_urls%", "PUT",
                 f"{srv.url}/v1/functions/{name}/url", json={"auth": "key"}) as create:
        still_answers(srv, warm)
        # Not there until written.
        assert requests.get(f"{srv.url}/v1/functions/{name}/url", timeout=60).status_code == 404
    assert create.result().status_code == 201, create.response.text
    assert requests.get(f"{srv.url}/v1/functions/{name}/url", timeout=60).status_code == 200

    with held_up(db, "function_urls", "DELETE FROM function_urls%", "DELETE",
                 f"{srv.url}/v1/functions/{name}/url") as delete:
        still_answers(srv, warm)
    assert delete.result().status_code == 204, delete.response.text
    assert requests.get(f"{srv.url}/v1/functions/{name}/url", timeout=60).status_code == 404
    assert psql(db, f"SELECT count(*) FROM function_urls WHERE function = '{name}'") == "0"


def test_held_volume_changes_leave_the_server_answering(srv, db):
    warm, vol = unique("warm"), unique("vol")
    deploy_py(srv, warm, ECHO_PY)
    probe = requests.get(f"{srv.url}/v1/volumes", timeout=60)
    if probe.status_code == 503:
        pytest.skip(f"this server keeps no volumes: {probe.text}")
    with held_up(db, "volumes", "INSERT INTO volumes%", "PUT", f"{srv.url}/v1/volumes/{vol}",
                 json={"size_mb": 16}) as create:
        still_answers(srv, warm)
        # Being created: a delete must wait for it.
        r = requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=60)
        assert r.status_code == 409, r.text
    assert create.result().status_code == 201, create.response.text

    with held_up(db, "volumes", "DELETE FROM volumes%", "DELETE",
                 f"{srv.url}/v1/volumes/{vol}") as delete:
        still_answers(srv, warm)
        # From the delete on, no function may come to mount it.
        r = requests.put(f"{srv.url}/v1/functions/{warm}",
                         json={"volumes": [{"name": vol, "path": "/mnt/v"}],
                               "permissions": [f"volume:{vol}"]}, timeout=60)
        assert r.status_code == 400 and "no volume named" in r.text, r.text
        r = requests.put(f"{srv.url}/v1/volumes/{vol}", json={"size_mb": 16}, timeout=60)
        assert r.status_code == 409 and "being deleted" in r.text, r.text
    assert delete.result().status_code == 204, delete.response.text
    assert requests.get(f"{srv.url}/v1/volumes/{vol}", timeout=60).status_code == 404
