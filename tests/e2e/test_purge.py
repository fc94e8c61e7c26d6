"""Deleting a function keeps its records and logs to be read later, unless
the delete asks for them to go too (?purge=1, `mayfly rm --purge`)."""

import requests

from conftest import assert_error, deploy_py, get_logs, get_record, invoke_ok, unique

PRINTER = "def handler(event, context):\n    print('line of', event['n'])\n    return event\n"


def called(srv, name, n=2):
    deploy_py(srv, name, PRINTER)
    rids = [invoke_ok(srv, name, {"n": i}).headers["X-Mayfly-Request-Id"] for i in range(n)]
    for rid in rids:
        get_record(srv, rid)
    return rids


def record_status(srv, rid):
    return requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=10).status_code


def test_a_plain_delete_keeps_records_and_logs(shared_server):
    srv = shared_server
    name = unique("keep")
    rids = called(srv, name)
    r = requests.delete(f"{srv.url}/v1/functions/{name}", timeout=10)
    assert r.status_code == 204, r.text
    assert all(record_status(srv, rid) == 200 for rid in rids)
    assert any(line["message"] == "line of 1" for line in get_logs(srv, name))


def test_delete_with_purge_removes_records_and_logs(shared_server):
    srv = shared_server
    name, other = unique("purge"), unique("bystander")
    rids = called(srv, name)
    kept = called(srv, other, n=1)
    r = requests.delete(f"{srv.url}/v1/functions/{name}", params={"purge": "1"}, timeout=10)
    assert r.status_code == 204, r.text
    assert all(record_status(srv, rid) == 404 for rid in rids)
    assert get_logs(srv, name) == []
    listed = requests.get(f"{srv.url}/v1/invocations", params={"function": name},
                          timeout=10).json()
    assert listed["invocations"] == []
    # Another function's are untouched.
    assert record_status(srv, kept[0]) == 200
    assert any(line["message"] == "line of 0" for line in get_logs(srv, other))


def test_a_bad_purge_value_is_400_and_deletes_nothing(shared_server):
    srv = shared_server
    name = unique("badpurge")
    deploy_py(srv, name, PRINTER)
    r = requests.delete(f"{srv.url}/v1/functions/{name}", params={"purge": "yes"}, timeout=10)
    assert_error(r, 400, "bad_request", "purge")
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).status_code == 200


def test_purging_an_unknown_function_is_404(shared_server):
    r = requests.delete(f"{shared_server.url}/v1/functions/{unique('nope')}",
                        params={"purge": "1"}, timeout=10)
    assert_error(r, 404, "not_found")


def test_cli_rm_purge(shared_server):
    srv = shared_server
    name = unique("clipurge")
    rids = called(srv, name, n=1)
    p = srv.cli("rm", name, "--purge")
    assert p.returncode == 0, p.stderr
    assert "records" in p.stdout and name in p.stdout, p.stdout
    assert record_status(srv, rids[0]) == 404
    assert get_logs(srv, name) == []
    p = srv.cli("rm", "--purge")
    assert p.returncode == 2 and "missing NAME" in p.stderr, p.stderr
