"""Metering: what each call's record meters, and GET /v1/usage, which sums
it per hour, day or month and prices it (docs/metering.md).

The usage rows are kept by the store as records are written, so a report
must equal the sums over the records themselves: the tests compare the two
after a mixed load (successes, errors, a timeout, async calls with
retries), on SQLite and on PostgreSQL."""

import csv
import io
import json
import subprocess
import pytest
import requests

from conftest import (MAYFLY_BIN, assert_error, database, deploy_py, free_port, get_record,
                      invoke, metric, metrics, run_cli, unique, wait_for)

WORKER_PY = """
import time

def handler(event, context):
    if not isinstance(event, dict) or "Records" in event:
        event = {}  # a topic's delivery
    print("x" * event.get("print", 0))
    hog = [b"x" * (1 << 20) for _ in range(event.get("alloc_mb", 0))]
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
"""


def usage(srv, **params):
    r = requests.get(f"{srv.url}/v1/usage", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def records(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 1000},
                     timeout=60)
    assert r.status_code == 200, r.text
    return [get_record(srv, x["request_id"]) for x in r.json()["invocations"]]


def deployed_and_called(srv, name, n):
    """Deploys the worker as name and calls it n times, until their records
    are there."""
    deploy_py(srv, name, WORKER_PY)
    for _ in range(n):
        assert invoke(srv, name, {}).status_code == 200
    wait_for("the records", lambda: len(records(srv, name)) == n)


# The calls mixed_load makes of name that run besides the schedule's
# fires: four sync (one a timeout), two async events (one retried) and a
# topic's delivery; and one of name-oom, killed out of memory.
MIXED_CALLS = 7


def final_records(srv, name):
    return [x for x in records(srv, name) if x["status"] not in ("queued", "running")
            and (x["status"] == "success" or x["attempts"] >= 1)]


def fires(srv, name):
    r = requests.get(f"{srv.url}/v1/schedules/{name}", timeout=60)
    assert r.status_code == 200, r.text
    return len([f for f in r.json()["fires"] if f["request_id"]])


def mixed_load(srv, name):
    """Calls of every outcome and trigger (the server runs with a test
    clock, which fires the schedule)."""
    deploy_py(srv, name, WORKER_PY, memory_mb=1024, timeout_s=2,
              **{"async": {"max_retries": 1}})
    # Out of memory: a timeout far beyond what the allocation takes, so
    # that the call ends with the kill whatever the machine's load.
    deploy_py(srv, name + "-oom", WORKER_PY, memory_mb=1024, timeout_s=120)
    r = invoke(srv, name + "-oom", {"alloc_mb": 1400}, timeout=300)
    assert r.headers.get("X-Mayfly-Function-Error"), r.text
    for event in ({"print": 10}, {"print": 3000, "sleep": 0.2}, {"fail": True},
                  {"sleep": 5}):
        invoke(srv, name, event, timeout=120)
    for event in ({"print": 5}, {"fail": True}):
        r = invoke(srv, name, event, headers={"X-Mayfly-Invocation-Type": "Event"})
        assert r.status_code == 202, r.text
    for method, path, body in (
            ("PUT", f"/v1/topics/{name}", None),
            ("POST", f"/v1/topics/{name}/subscriptions", {"function": name}),
            ("POST", f"/v1/topics/{name}/publish", {"message": "m"}),
            ("PUT", f"/v1/schedules/{name}", {"expression": "rate(1 minute)", "function": name}),
            ("POST", "/v1/test/clock", {"advance_s": 61})):
        r = requests.request(method, f"{srv.url}{path}", json=body, timeout=60)
        assert r.status_code in (200, 201, 202), (path, r.text)
    # Every call has its final record: the failing event after its retry.
    wait_for("every call's final record", lambda: fires(srv, name) and len(
        final_records(srv, name)) == MIXED_CALLS + fires(srv, name), timeout=180)
    recs = records(srv, name)
    assert {(x["trigger"] or "").split(":")[0] for x in recs} >= {"invoke", "schedule", "topic"}
    oom = records(srv, name + "-oom")
    assert [(x["status"], x["error_type"]) for x in oom] == [("oom", "Runtime.OutOfMemory")]
    wait_for("the failing event's retry", lambda: any(
        x["status"] == "error" and x["attempts"] == 2 for x in records(srv, name)), timeout=120)


def assert_usage_is_the_records_sum(srv, name, calls=None):
    recs = records(srv, name)
    ran = [x for x in recs if x["status"] not in ("queued", "running", "throttled")]
    doc = usage(srv, granularity="hour", **{"from": "2000-01-01T00:00:00Z"})
    rows = [x for x in doc["rows"] if x["function"] == name]
    assert rows, doc
    total = {k: sum(x[k] for x in rows) for k in
             ("requests", "billed_ms", "cpu_ms", "egress_bytes", "kv_ops", "log_bytes")}
    want = calls if calls is not None else MIXED_CALLS + fires(srv, name)
    assert total["requests"] == len(ran) == want, (total, recs)
    for k in ("billed_ms", "cpu_ms", "egress_bytes", "kv_ops", "log_bytes"):
        assert total[k] == sum(x[k] for x in recs), k
    # At 1,024 MB a GB-second is a billed second, in each row and record
    # alike (both are exact quotients of whole numbers), and billed_ms sums
    # as shown above.
    assert all(x["gb_seconds"] == x["billed_ms"] / 1000 for x in rows + recs), (rows, recs)
    gb_s = sum(x["gb_seconds"] for x in rows)
    # A line of 3,000 characters at least (of the mixed load's).
    assert calls is not None or total["log_bytes"] >= 3000
    # Lambda's prices by default.
    assert doc["currency"] == "USD" and doc["prices"]["gb_second"] == 0.0000166667
    cost = total["requests"] / 1e6 * 0.20 + gb_s * 0.0000166667
    assert sum(x["cost"] for x in rows) == pytest.approx(cost, rel=1e-12)


def now_utc():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("--retry-base-ms", "100", "--test-clock", now_utc())


def test_usage_equals_the_records_after_a_mixed_load(srv):
    name = unique("metered")
    mixed_load(srv, name)
    assert_usage_is_the_records_sum(srv, name)
    assert_usage_is_the_records_sum(srv, name + "-oom", calls=1)


def test_metrics_keep_running_totals(srv):
    name = unique("counted")
    deploy_py(srv, name, WORKER_PY, memory_mb=2048)
    for event in ({"print": 100}, {"print": 50, "fail": True}):
        invoke(srv, name, event)
    wait_for("the records", lambda: len(records(srv, name)) == 2)
    recs = records(srv, name)
    m = metrics(srv)
    labels = {"tenant": "default", "function": name}
    assert metric(m, "mayfly_usage_requests_total", **labels) == 2
    assert metric(m, "mayfly_usage_gb_seconds_total", **labels) == pytest.approx(
        sum(x["gb_seconds"] for x in recs), abs=1e-6)
    assert metric(m, "mayfly_usage_log_bytes_total", **labels) == sum(
        x["log_bytes"] for x in recs)
    doc = usage(srv, **{"from": "2000-01-01T00:00:00Z"})
    cost = sum(x["cost"] for x in doc["rows"] if x["function"] == name)
    assert metric(m, "mayfly_usage_cost_total", **labels) == pytest.approx(cost, rel=1e-6)


def test_a_record_meters_its_gb_seconds(srv):
    name = unique("sleeper")
    deploy_py(srv, name, WORKER_PY, memory_mb=1024)
    r = invoke(srv, name, {"sleep": 1.5, "print": 5})
    assert r.status_code == 200, r.text
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["billed_ms"] >= 1500
    assert rec["gb_seconds"] == rec["billed_ms"] / 1000
    assert rec["log_bytes"] >= 5 and rec["egress_bytes"] == 0


def test_granularity_and_grouping(srv):
    name = unique("grouped")
    deployed_and_called(srv, name, 3)
    by_hour = usage(srv, granularity="hour", **{"from": "2000-01-01T00:00:00Z"})
    by_month = usage(srv, granularity="month", **{"from": "2000-01-01T00:00:00Z"})
    by_tenant = usage(srv, group_by="tenant", **{"from": "2000-01-01T00:00:00Z"})
    mine = [x for x in by_month["rows"] if x["function"] == name]
    assert len(mine) == 1 and mine[0]["requests"] == 3
    assert mine[0]["period"].endswith("-01T00:00:00.000Z"), mine
    assert by_hour["totals"]["requests"] == by_month["totals"]["requests"]
    assert [x["tenant"] for x in by_tenant["rows"]] == ["default"] * len(by_tenant["rows"])
    assert by_tenant["totals"] == by_month["totals"]
    # One function's usage alone.
    only = usage(srv, granularity="month", function=name, **{"from": "2000-01-01T00:00:00Z"})
    assert only["function"] == name
    assert [x["function"] for x in only["rows"]] == [name]
    assert only["totals"]["requests"] == 3
    out = run_cli(srv.url, "usage", "--from", "2000-01-01T00:00:00Z", "--function", name,
                  "--format", "csv")
    assert out.returncode == 0 and [r.split(",")[1] for r in out.stdout.splitlines()[1:]] == \
        [name, "-"], out.stdout
    # A window before any call holds nothing.
    empty = usage(srv, **{"from": "2001-01-01T00:00:00Z", "to": "2001-01-02T00:00:00Z"})
    assert empty["rows"] == [] and empty["totals"]["requests"] == 0


@pytest.mark.parametrize("params,mentions", [
    ({"granularity": "week"}, "granularity"),
    ({"group_by": "color"}, "group_by"),
    ({"from": "yesterday"}, "from"),
    ({"to": "1", "from": "2"}, "to"),
    ({"function": "no spaces"}, "function"),
])
def test_bad_queries_name_the_field(srv, params, mentions):
    r = requests.get(f"{srv.url}/v1/usage", params=params, timeout=60)
    assert_error(r, 400, "bad_request", mentions)


def test_a_prices_file_sets_the_prices(server, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"currency": "EUR", "request_per_million": 2,
                                  "gb_second": 0.5, "cpu_second": 0.25}))
    srv = server("--prices", str(prices))
    name = unique("priced")
    deploy_py(srv, name, WORKER_PY, memory_mb=512)
    assert invoke(srv, name, {"sleep": 0.1}).status_code == 200
    wait_for("the record", lambda: len(records(srv, name)) == 1)
    rec = records(srv, name)[0]
    doc = usage(srv, **{"from": "2000-01-01T00:00:00Z"})
    assert doc["currency"] == "EUR"
    assert doc["prices"] == {"currency": "EUR", "request_per_million": 2, "gb_second": 0.5,
                             "cpu_second": 0.25, "egress_gb": 0, "kv_ops_per_million": 0,
                             "kv_gb_month": 0, "volume_gb_month": 0}
    by_hand = 1 / 1e6 * 2 + 0.5 * rec["billed_ms"] / 1000 * 0.5 + rec["cpu_ms"] / 1000 * 0.25
    assert doc["totals"]["cost"] == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize("content,mentions", [
    ("not json", "not JSON"),
    ('{"gb_second": -1}', "gb_second"),
    ('{"per_request": 1}', "per_request"),
    ('{"currency": "US DOLLARS"}', "currency"),
    ('[1]', "object"),
])
def test_a_bad_prices_file_stops_the_start(tmp_path, content, mentions):
    prices = tmp_path / "prices.json"
    prices.write_text(content)
    out = subprocess.run([MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}",
                          "--data", str(tmp_path / "data"), "--prices", str(prices)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert out.returncode == 2, out.stderr
    assert "--prices" in out.stderr and mentions in out.stderr, out.stderr


def test_usage_equals_the_records_on_postgresql(pg, server):
    srv = server("--store", database(pg, "mayfly_usage"), "--retry-base-ms", "100",
                 "--test-clock", now_utc())
    name = unique("metered-pg")
    mixed_load(srv, name)
    assert_usage_is_the_records_sum(srv, name)
    assert_usage_is_the_records_sum(srv, name + "-oom", calls=1)


def test_cli_prints_a_table_csv_and_json(srv):
    name = unique("cli-usage")
    deployed_and_called(srv, name, 2)
    since = ("--from", "2000-01-01T00:00:00+00:00")
    doc = json.loads(run_cli(srv.url, "usage", *since, "--format", "json").stdout)
    out = run_cli(srv.url, "usage", *since, "--by", "function", "--format", "csv")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0][:3] == ["PERIOD", "FUNCTION", "REQUESTS"]
    assert rows[-1][0] == "TOTAL" and int(rows[-1][2]) == doc["totals"]["requests"]
    mine = [r for r in rows if r[1] == name]
    assert rows[0][8] == "COST (USD)"
    assert len(mine) == 1 and mine[0][2] == "2" and float(mine[0][8]) >= 0
    table = run_cli(srv.url, "usage", *since, "--granularity", "month")
    assert table.returncode == 0 and name in table.stdout and "TOTAL" in table.stdout
    bad = run_cli(srv.url, "usage", "--format", "xml")
    assert bad.returncode == 2 and "--format" in bad.stderr
    bad = run_cli(srv.url, "usage", "--granularity", "week")
    assert bad.returncode == 1 and "granularity" in bad.stderr


# Storage is priced per GB-month: 10^9 bytes for 730 hours, in byte-ms.
BYTE_MS_PER_GB_MONTH = 1e9 * 730.0 * 3600.0 * 1000.0


def storage_rows(srv, kind, name):
    rows = usage(srv, granularity="hour", group_by="function", **{"from": "2000-01-01T00:00:00Z"})
    return [r for r in rows["rows"] if r["function"] == f"{kind}:{name}"]


def held(srv, kind, name, field):
    """The byte-ms the usage rows of a store or volume hold so far."""
    return sum(r[field] for r in storage_rows(srv, kind, name))


def test_storage_is_metered_over_time_and_priced_per_gb_month(server, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"kv_gb_month": 2.5, "volume_gb_month": 0.75}))
    srv = server("--storage-interval", "1", "--prices", prices)
    store, vol = unique("held"), unique("vol")
    r = requests.put(f"{srv.url}/v1/kv/{store}/key", data=b"v" * 97, timeout=60)
    assert r.status_code in (200, 201), r.text
    stored = {s["name"]: s for s in requests.get(f"{srv.url}/v1/kv", timeout=60).json()["stores"]}
    size = stored[store]["bytes"]
    assert size == 3 + 97
    r = requests.put(f"{srv.url}/v1/volumes/{vol}", json={"size_mb": 8}, timeout=120)
    assert r.status_code == 201, r.text
    # A few samples of each come, one a second.
    wait_for("KV storage in usage", lambda: held(srv, "kv", store, "kv_byte_ms") >= 3 * size * 1000)
    wait_for("volume storage in usage", lambda: held(srv, "volume", vol, "volume_byte_ms") > 0)
    for row in storage_rows(srv, "kv", store):
        # Each sample is the store's bytes for a whole second; nothing else.
        assert row["kv_byte_ms"] % (size * 1000) == 0, row
        assert (row["requests"], row["billed_ms"], row["volume_byte_ms"]) == (0, 0, 0), row
        assert row["tenant"] == "default"
        assert row["kv_gb_months"] == row["kv_byte_ms"] / BYTE_MS_PER_GB_MONTH
        assert row["cost"] == row["kv_byte_ms"] / BYTE_MS_PER_GB_MONTH * 2.5, row
    for row in storage_rows(srv, "volume", vol):
        assert row["volume_byte_ms"] % 1000 == 0 and row["kv_byte_ms"] == 0, row
        assert row["cost"] == row["volume_byte_ms"] / BYTE_MS_PER_GB_MONTH * 0.75, row
    doc = usage(srv, granularity="hour")
    assert doc["prices"]["kv_gb_month"] == 2.5 and doc["prices"]["volume_gb_month"] == 0.75


def test_shared_kv_storage_is_counted_once_by_two_nodes(pg, server):
    import time
    db = database(pg, "mayfly_storage")
    a, b = (server("--store", db, "--storage-interval", "1", "--sandbox-pool", "0",
                   "--zygotes", "0") for _ in range(2))
    store = unique("shared")
    r = requests.put(f"{a.url}/v1/kv/{store}/k", data=b"x" * 999, timeout=60)
    assert r.status_code in (200, 201), r.text
    size = 1 + 999
    began = time.monotonic()
    wait_for("shared KV storage in usage",
             lambda: held(b, "kv", store, "kv_byte_ms") >= 10 * size * 1000)
    samples = held(a, "kv", store, "kv_byte_ms") // (size * 1000)
    elapsed = time.monotonic() - began
    # One sample a second whichever node takes it: two nodes counting
    # each would give about twice as many as seconds went by.
    assert samples <= elapsed + 2, (samples, elapsed)
