"""Budgets (docs/metering.md, "Budgets"): PUT/GET/DELETE /v1/budgets, the
spend of a period at the server's prices, thresholds recorded once, and a
block budget that refuses sync calls (402 on /v1, 429
TooManyRequestsException through the Lambda API) and holds async events
until it is raised.

Every server here bills a call 1.0 exactly (a million per million
requests, nothing per GB-second), so a budget's spend is the number of
calls it covers, and every comparison is exact."""

import json
import re

import pytest
import requests

from conftest import (assert_error, database, deploy_py, invoke, unique, wait_for)

ECHO_PY = """
def handler(event, context):
    return {"ok": True}
"""


@pytest.fixture
def prices(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"currency": "EUR", "request_per_million": 1000000,
                                "gb_second": 0}))
    return path


def put_budget(srv, budget, headers=None, **body):
    return requests.put(f"{srv.url}/v1/budgets/{budget}", json=body, headers=headers or {},
                        timeout=60)


def get_budget(srv, budget, headers=None, **params):
    r = requests.get(f"{srv.url}/v1/budgets/{budget}", params=params, headers=headers or {},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def get_record(srv, request_id):
    """The record of request_id as it is now (queued ones too), or {}."""
    r = requests.get(f"{srv.url}/v1/invocations/{request_id}", timeout=60)
    if r.status_code == 404:
        return {}
    assert r.status_code == 200, r.text
    return r.json()


def crossing_lines(text, name):
    return re.findall(rf"budget {re.escape(name)} of tenant default crossed (\S+)% of its amount",
                      text)


def test_a_block_budget_refuses_sync_calls_and_holds_async_events_until_raised(server, prices):
    srv = server("--prices", prices, "--retry-base-ms", "200")
    fn = unique("capped")
    deploy_py(srv, fn, ECHO_PY)
    r = put_budget(srv, "cap", tenant="default", function=fn, period="day", amount=3,
                   alert_at=[0.5, 1.0], action="block")
    assert r.status_code == 201, r.text
    b = r.json()
    assert (b["name"], b["tenant"], b["function"], b["period"], b["amount"], b["action"]) == \
        ("cap", "default", fn, "day", 3.0, "block")
    assert b["spend"] == 0.0 and b["blocking"] is False and b["currency"] == "EUR"

    for _ in range(3):
        assert invoke(srv, fn, {}).status_code == 200
    b = get_budget(srv, "cap")
    assert b["spend"] == 3.0 and b["blocking"] is True
    assert b["thresholds_crossed"] == [0.5, 1.0]

    # The fourth call is refused, naming the budget; another function is not.
    r = invoke(srv, fn, {})
    assert_error(r, 402, "budget_exceeded", "cap")
    other = unique("free")
    deploy_py(srv, other, ECHO_PY)
    assert invoke(srv, other, {}).status_code == 200

    # The same through the Lambda API: a throttle, with the reason.
    lam = lambda_client(srv)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=fn, Payload=b"{}")
    assert e.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert e.value.response.get("Reason") == "BudgetExceeded"
    assert "cap" in e.value.response["Error"]["Message"]

    # An async event is accepted and waits, its record saying why.
    r = invoke(srv, fn, {}, headers={"X-Mayfly-Invocation-Type": "Event"})
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]

    def held():
        rec = get_record(srv, rid)
        return rec.get("status") == "queued" and "cap" in (rec.get("error_message") or "")
    wait_for("the event's record to say it waits for the budget", held)
    rec = get_record(srv, rid)
    assert rec["attempts"] == 0 and rec["error_type"] == "BudgetExceeded"

    # Raised, the budget lets it run, once, and sync calls through again.
    r = put_budget(srv, "cap", tenant="default", function=fn, period="day", amount=10,
                   alert_at=[0.5, 1.0], action="block")
    assert r.status_code == 200, r.text
    wait_for("the held event to run", lambda: get_record(srv, rid).get("status") == "success")
    assert get_record(srv, rid)["attempts"] == 1
    assert invoke(srv, fn, {}).status_code == 200
    wait_for("the event's cost in the spend", lambda: get_budget(srv, "cap")["spend"] == 5.0)
    assert get_budget(srv, "cap")["blocking"] is False


def test_deleting_a_block_budget_releases_what_it_held(server, prices):
    srv = server("--prices", prices)
    fn = unique("held")
    deploy_py(srv, fn, ECHO_PY)
    assert put_budget(srv, "stop", tenant="default", period="month", amount=1,
                      action="block").status_code == 201
    assert invoke(srv, fn, {}).status_code == 200
    assert_error(invoke(srv, fn, {}), 402, "budget_exceeded", "stop")
    # Its function URL refuses the same way.
    r = requests.put(f"{srv.url}/v1/functions/{fn}/url", json={}, timeout=60)
    assert r.status_code in (200, 201), r.text
    assert_error(requests.get(f"{srv.url}/url/{fn}/", timeout=60), 402, "budget_exceeded",
                 "stop")
    r = invoke(srv, fn, {}, headers={"X-Mayfly-Invocation-Type": "Event"})
    rid = r.json()["request_id"]
    wait_for("the event to wait",
             lambda: get_record(srv, rid).get("error_type") == "BudgetExceeded")
    assert get_record(srv, rid)["status"] == "queued"
    r = requests.delete(f"{srv.url}/v1/budgets/stop", timeout=60)
    assert r.status_code == 204, r.text
    wait_for("the released event to run", lambda: get_record(srv, rid).get("status") == "success")
    assert invoke(srv, fn, {}).status_code == 200
    r = requests.get(f"{srv.url}/v1/budgets/stop", timeout=60)
    assert_error(r, 404, "not_found", "stop")
    assert_error(requests.delete(f"{srv.url}/v1/budgets/stop", timeout=60), 404, "not_found")


def test_a_schedules_fire_waits_for_a_spent_budget(server, prices):
    srv = server("--prices", prices, "--test-clock", "2026-03-28T12:00:00Z",
                 "--sandbox-pool", "0", "--zygotes", "0")
    fn = unique("ticked")
    deploy_py(srv, fn, ECHO_PY)
    assert put_budget(srv, "ticks", tenant="default", function=fn, period="day", amount=1,
                      action="block").status_code == 201
    assert invoke(srv, fn, {}).status_code == 200
    assert_error(invoke(srv, fn, {}), 402, "budget_exceeded", "ticks")
    # A rate fires at once: its event is queued, and waits.
    r = requests.put(f"{srv.url}/v1/schedules/tick", json={"expression": "rate(1 hour)",
                                                           "function": fn}, timeout=60)
    assert r.status_code in (200, 201), r.text

    def fired():
        fires = requests.get(f"{srv.url}/v1/schedules/tick", timeout=60).json()["fires"]
        return fires[0]["request_id"] if fires and fires[0]["request_id"] else None
    rid = wait_for("the schedule's fire", fired)
    wait_for("the fire to wait for the budget",
             lambda: get_record(srv, rid).get("error_type") == "BudgetExceeded")
    rec = get_record(srv, rid)
    assert rec["status"] == "queued" and rec["attempts"] == 0
    assert rec["trigger"] == "schedule:tick" and "ticks" in rec["error_message"]
    # Raised, the fire runs.
    assert put_budget(srv, "ticks", tenant="default", function=fn, period="day", amount=5,
                      action="block").status_code == 200
    wait_for("the fire to run", lambda: get_record(srv, rid).get("status") == "success")


def lambda_client(srv):
    import boto3
    from botocore.config import Config
    session = boto3.session.Session(aws_access_key_id="AKIADEV", aws_secret_access_key="dev",
                                    region_name="us-east-1")
    return session.client("lambda", endpoint_url=srv.url,
                          config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                        read_timeout=60, connect_timeout=10))


def test_an_alert_budget_lets_calls_through_and_records_each_crossing_once(server, prices):
    srv = server("--prices", prices)
    fn = unique("watched")
    deploy_py(srv, fn, ECHO_PY)
    assert put_budget(srv, "watch", tenant="default", period="day", amount=4,
                      alert_at=[0.5, 1.0]).status_code == 201
    for _ in range(6):
        assert invoke(srv, fn, {}).status_code == 200
    b = get_budget(srv, "watch")
    assert b["spend"] == 6.0 and b["action"] == "alert" and b["blocking"] is False
    assert b["thresholds_crossed"] == [0.5, 1.0]
    wait_for("both crossings", lambda: len(get_budget(srv, "watch")["crossings"]) == 2)
    crossings = get_budget(srv, "watch")["crossings"]
    assert [(c["threshold"], c["amount"], c["spend"]) for c in crossings] == \
        [(0.5, 4.0, 2.0), (1.0, 4.0, 4.0)]
    assert all(c["period_start"] == b["period_start"] for c in crossings)
    wait_for("the log lines", lambda: len(crossing_lines(srv.stderr(), "watch")) == 2)
    assert crossing_lines(srv.stderr(), "watch") == ["50", "100"]

    # A restart keeps the budget and its spend (from the usage), and does
    # not record or log a crossing again.
    srv.restart()
    b = get_budget(srv, "watch")
    assert b["spend"] == 6.0 and b["amount"] == 4.0
    assert [c["threshold"] for c in b["crossings"]] == [0.5, 1.0]
    assert invoke(srv, fn, {}).status_code == 200
    assert get_budget(srv, "watch")["spend"] == 7.0
    # A barrier: the next GET's crossings are read after any crossing the
    # restart may have written.
    assert len(get_budget(srv, "watch")["crossings"]) == 2
    assert crossing_lines(srv.stderr(), "watch") == []

    # The list shows it, with the forecast for the day.
    r = requests.get(f"{srv.url}/v1/budgets", timeout=60)
    assert r.status_code == 200, r.text
    (listed,) = [x for x in r.json()["budgets"] if x["name"] == "watch"]
    assert listed["spend"] == 7.0 and listed["forecast"] >= 7.0


@pytest.mark.parametrize("body, field", [
    ({"period": "day", "amount": 1}, "tenant"),
    ({"tenant": "Not A Tenant", "period": "day", "amount": 1}, "tenant"),
    ({"tenant": "default", "amount": 1}, "period"),
    ({"tenant": "default", "period": "week", "amount": 1}, "period"),
    ({"tenant": "default", "period": "day"}, "amount"),
    ({"tenant": "default", "period": "day", "amount": 0}, "amount"),
    ({"tenant": "default", "period": "day", "amount": "5"}, "amount"),
    ({"tenant": "default", "period": "day", "amount": 1, "alert_at": []}, "alert_at"),
    ({"tenant": "default", "period": "day", "amount": 1, "alert_at": [0]}, "alert_at"),
    ({"tenant": "default", "period": "day", "amount": 1, "alert_at": [0.5, 0.5]}, "alert_at"),
    ({"tenant": "default", "period": "day", "amount": 1, "action": "stop"}, "action"),
    ({"tenant": "default", "period": "day", "amount": 1, "function": "a b"}, "function"),
    ({"tenant": "default", "period": "day", "amount": 1, "colour": "red"}, "colour"),
    ({"tenant": "default", "period": "day", "amount": 1, "name": "other"}, "name"),
])
def test_a_bad_budget_is_refused_naming_the_field(shared_server, body, field):
    r = put_budget(shared_server, "bad", **body)
    assert_error(r, 400, "bad_request", field)


def test_a_bad_name_or_body_is_refused(shared_server):
    r = requests.put(f"{shared_server.url}/v1/budgets/bad", data=b"{not json", timeout=60)
    assert_error(r, 400, "bad_request", "body")
    r = requests.put(f"{shared_server.url}/v1/budgets/bad", data=b"[1]", timeout=60)
    assert_error(r, 400, "bad_request", "body")
    r = put_budget(shared_server, "a.b", tenant="default", period="day", amount=1)
    assert_error(r, 400, "bad_request", "name")
    r = requests.get(f"{shared_server.url}/v1/budgets", params={"tenant": "BAD"}, timeout=60)
    assert_error(r, 400, "bad_request", "tenant")


KEYS = {
    "admin": ("AKIABADMIN000000001", "admin-secret", "default", "admin"),
    "dev": ("AKIABDEV00000000001", "dev-secret", "default", "developer"),
    "viewer": ("AKIABVIEW0000000001", "view-secret", "default", "viewer"),
    "other": ("AKIABOTHER000000001", "other-secret", "team-b", "developer"),
}


def auth(role):
    key_id, secret, _, _ = KEYS[role]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


def test_budgets_are_their_tenants(server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    srv = server("--keys", keys)
    base = {"period": "month", "amount": 5}
    # A developer manages its own tenant's, and no other's.
    r = put_budget(srv, "team", headers=auth("other"), tenant="team-b", **base)
    assert r.status_code == 201, r.text
    assert_error(put_budget(srv, "team", headers=auth("other"), tenant="default", **base),
                 403, "forbidden", "team-b", "default")
    r = requests.get(f"{srv.url}/v1/budgets/team", params={"tenant": "default"},
                     headers=auth("other"), timeout=60)
    assert_error(r, 403, "forbidden")
    r = requests.delete(f"{srv.url}/v1/budgets/team", params={"tenant": "default"},
                        headers=auth("other"), timeout=60)
    assert_error(r, 403, "forbidden")
    # The same name in the default tenant is another budget.
    assert put_budget(srv, "team", headers=auth("dev"), tenant="default",
                      **base).status_code == 201
    assert_error(put_budget(srv, "team", headers=auth("dev"), tenant="team-b", **base),
                 403, "forbidden")
    # A viewer reads but does not change them.
    assert get_budget(srv, "team", headers=auth("viewer"))["tenant"] == "default"
    r = put_budget(srv, "team", headers=auth("viewer"), tenant="default", **base)
    assert_error(r, 403, "forbidden", "viewer")
    # Each developer lists its own; an admin every tenant's, or one.
    def names(role, **params):
        r = requests.get(f"{srv.url}/v1/budgets", params=params, headers=auth(role),
                         timeout=60)
        assert r.status_code == 200, r.text
        return [(b["tenant"], b["name"]) for b in r.json()["budgets"]]
    assert names("other") == [("team-b", "team")]
    assert names("dev") == [("default", "team")]
    assert names("admin") == [("default", "team"), ("team-b", "team")]
    assert names("admin", tenant="team-b") == [("team-b", "team")]
    r = requests.get(f"{srv.url}/v1/budgets", headers={**auth("admin"),
                                                       "X-Mayfly-Tenant": "team-b"}, timeout=60)
    assert [(b["tenant"], b["name"]) for b in r.json()["budgets"]] == [("team-b", "team")]
    assert get_budget(srv, "team", headers=auth("admin"), tenant="team-b")["tenant"] == "team-b"
    r = requests.delete(f"{srv.url}/v1/budgets/team", params={"tenant": "team-b"},
                        headers=auth("admin"), timeout=60)
    assert r.status_code == 204, r.text
    assert names("admin") == [("default", "team")]


def test_the_cli_puts_lists_shows_and_removes_budgets(server, prices):
    srv = server("--prices", prices)
    p = srv.cli("budget", "put", "nightly", "--tenant", "default", "--period", "day",
                "--amount", "2.5", "--alert-at", "0.5,1", "--action", "block",
                "--notify-webhook", "http://127.0.0.1:9/hook", "--notify-topic", "spend")
    assert p.returncode == 0, p.stderr
    assert "created budget nightly" in p.stdout
    p = srv.cli("budget", "ls")
    assert p.returncode == 0, p.stderr
    assert "nightly" in p.stdout and "2.500000" in p.stdout and "block" in p.stdout
    p = srv.cli("budget", "get", "nightly")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["amount"] == 2.5 and doc["alert_at"] == [0.5, 1.0] and doc["crossings"] == []
    assert doc["notify"] == [{"webhook": "http://127.0.0.1:9/hook"}, {"topic": "spend"}], doc
    p = srv.cli("budget", "put", "nightly", "--tenant", "default", "--period", "day",
                "--amount", "lots")
    assert p.returncode == 2 and "--amount" in p.stderr
    p = srv.cli("budget", "put", "nightly", "--tenant", "default", "--period", "day",
                "--amount", "-1")
    assert p.returncode == 1 and "amount" in p.stderr
    p = srv.cli("budget", "rm", "nightly")
    assert p.returncode == 0, p.stderr
    p = srv.cli("budget", "get", "nightly")
    assert p.returncode == 1 and "nightly" in p.stderr


def test_on_postgresql_every_node_keeps_the_budget_and_counts_the_others_calls(server, prices,
                                                                               pg):
    db = database(pg, "mayfly_budgets")
    a = server("--store", db, "--prices", prices, "--sandbox-pool", "0", "--zygotes", "0")
    b = server("--store", db, "--prices", prices, "--sandbox-pool", "0", "--zygotes", "0")
    fn = unique("shared")
    deploy_py(a, fn, ECHO_PY)
    assert put_budget(a, "shared", tenant="default", function=fn, period="day", amount=3,
                      alert_at=[0.5, 1.0], action="block").status_code == 201

    def known_on_b():
        r = requests.get(f"{b.url}/v1/budgets/shared", timeout=60)
        return r.status_code == 200 and r.json()["amount"] == 3.0
    wait_for("the budget on B", known_on_b)
    wait_for(f"{fn} on B", lambda: invoke(b, fn, {}).status_code == 200)
    # One call on B, two on A: each node comes to count all three, and
    # refuses the next.
    assert invoke(a, fn, {}).status_code == 200
    assert invoke(a, fn, {}).status_code == 200
    for srv in (a, b):
        wait_for(f"{srv.url} to count every node's calls",
                 lambda srv=srv: get_budget(srv, "shared")["blocking"] is True)
        assert get_budget(srv, "shared")["spend"] == 3.0
        assert_error(invoke(srv, fn, {}), 402, "budget_exceeded", "shared")
    # Each crossing is recorded once, and logged by the node that did.
    crossings = get_budget(a, "shared")["crossings"]
    assert [c["threshold"] for c in crossings] == [0.5, 1.0]
    wait_for("the crossings in the logs",
             lambda: sorted(crossing_lines(a.stderr(), "shared") +
                            crossing_lines(b.stderr(), "shared")) == ["100", "50"])
    # Deleted on B, it is gone from A, and A lets calls through.
    assert requests.delete(f"{b.url}/v1/budgets/shared", timeout=60).status_code == 204
    wait_for("the budget gone from A",
             lambda: requests.get(f"{a.url}/v1/budgets/shared", timeout=60).status_code == 404)
    assert invoke(a, fn, {}).status_code == 200


def test_storage_counts_in_a_budget(server, tmp_path):
    # Only storage costs here: 10^3 bytes held for the one-second sample
    # are 10^6 byte-ms, and a GB-month is 2.628 × 10^18 of them, so at this
    # price each sample costs about 1.0.
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"currency": "EUR", "request_per_million": 0, "gb_second": 0,
                                "kv_gb_month": 2.628e12}))
    srv = server("--prices", path, "--storage-interval", "1")
    fn = unique("stored")
    deploy_py(srv, fn, ECHO_PY)
    r = put_budget(srv, "storage", tenant="default", period="day", amount=2.5, action="block")
    assert r.status_code == 201, r.text
    r = requests.put(f"{srv.url}/v1/kv/{unique('st')}/k", data=b"x" * 999, timeout=60)
    assert r.status_code in (200, 201), r.text
    # No call is made: what the store holds spends the budget.
    wait_for("storage to spend the budget", lambda: get_budget(srv, "storage")["blocking"],
             timeout=120)
    assert_error(invoke(srv, fn, {}), 402, "budget_exceeded", "storage")
