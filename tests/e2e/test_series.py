"""GET /v1/functions/{name}/series (docs/console.md): a function's metrics
over time, one point a step, aggregated by the store. Each series must agree
with the records themselves: the tests invoke a function with successes,
errors, a cold start and overlapping calls, then compute every metric from
its records by hand and compare, on SQLite and on PostgreSQL."""

import math
import time
from datetime import datetime

import pytest
import requests

from conftest import (assert_error, database, deploy_py, invoke, invoke_all, unique,
                      wait_for)

WORKER_PY = """
import time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    if event.get("fail"):
        raise RuntimeError("asked to fail")
    return {"ok": True}
"""

RAN = ("success", "error", "timeout", "oom")
STEP_S = 60


def series(srv, name, **params):
    r = requests.get(f"{srv.url}/v1/functions/{name}/series", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def records(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 1000},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def start_ms(rec):
    return int(datetime.fromisoformat(rec["start"].replace("Z", "+00:00")).timestamp() * 1000)


def nearest_rank(values, pct):
    values = sorted(values)
    return values[math.ceil(len(values) * pct / 100) - 1]


def most_in_flight(spans, lo, hi):
    """The most calls running at once in [lo, hi): a sweep, as by hand."""
    edges = []
    for s, d in spans:
        e = s + max(1, math.ceil(d))
        edges += [(s, 1), (e, -1)]
    edges.sort(key=lambda x: (x[0], x[1]))
    cur = most = 0
    for t, d in edges:
        if t >= hi:
            break
        cur += d
        if t < lo:
            most = cur
        else:
            most = max(most, cur)
    return most


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded(request, module_server_factory):
    """A server on each store, with a function called: 4 successes (one
    the cold start), 2 errors, then 3 calls that overlap; its records."""
    if request.param == "sqlite":
        srv = module_server_factory()
    else:
        pg = request.getfixturevalue("pg")
        srv = module_server_factory("--store", database(pg, "mayfly_series"))
    name = unique("series")
    deploy_py(srv, name, WORKER_PY)
    for event in ({}, {}, {"fail": True}, {}, {"fail": True}, {}):
        invoke(srv, name, event)
    invoke_all(srv, name, [{"sleep": 1.5}] * 3)
    wait_for("the records", lambda: len(records(srv, name)) == 9)
    recs = records(srv, name)
    return srv, name, recs


def window(recs):
    """A window that holds every record, with the step's buckets."""
    lo = min(start_ms(r) for r in recs) - 5 * 60000
    hi = max(start_ms(r) for r in recs) + 5 * 60000
    return lo, hi


def by_step(recs, doc):
    """The records that ran, by the step they started in."""
    buckets = {}
    for r in recs:
        if r["status"] in RAN:
            i = (start_ms(r) - doc["from"]) // (doc["step"] * 1000)
            buckets.setdefault(i, []).append(r)
    return buckets


def test_counts_equal_the_records(loaded):
    srv, name, recs = loaded
    lo, hi = window(recs)
    ran = [r for r in recs if r["status"] in RAN]
    assert len(ran) == 9
    want = {
        "invocations": len(ran),
        "errors": sum(r["status"] != "success" for r in ran),
        "cold_starts": sum(bool(r["cold_start"]) for r in ran),
        "throttles": sum(r["status"] == "throttled" for r in recs),
    }
    assert want["errors"] == 2 and want["cold_starts"] >= 1
    for metric, total in want.items():
        doc = series(srv, name, metric=metric, **{"from": lo, "to": hi, "step": STEP_S})
        assert doc["metric"] == metric and doc["unit"] == "count"
        assert doc["step"] == STEP_S and doc["from"] % (STEP_S * 1000) == 0
        assert doc["from"] <= lo and doc["to"] == hi
        ts = [p[0] for p in doc["points"]]
        assert ts == list(range(doc["from"], hi, STEP_S * 1000))
        assert sum(p[1] for p in doc["points"]) == total, (metric, doc["points"])
        buckets = by_step(recs, doc)
        if metric == "invocations":
            for i, p in enumerate(doc["points"]):
                assert p[1] == len(buckets.get(i, [])), (i, p)


@pytest.mark.parametrize("metric,pct", [("duration_p50", 50), ("duration_p99", 99),
                                        ("duration_avg", None)])
def test_durations_match_the_records(loaded, metric, pct):
    srv, name, recs = loaded
    lo, hi = window(recs)
    doc = series(srv, name, metric=metric, **{"from": lo, "to": hi, "step": STEP_S})
    assert doc["unit"] == "ms"
    buckets = by_step(recs, doc)
    for i, (t, v) in enumerate(doc["points"]):
        durations = [r["duration_ms"] for r in buckets.get(i, [])]
        if not durations:
            assert v is None, (i, v)
        elif pct:
            assert v == pytest.approx(nearest_rank(durations, pct)), (i, durations)
        else:
            assert v == pytest.approx(sum(durations) / len(durations)), (i, durations)
    if pct == 99:
        # The three overlapping calls slept 1.5 s: p99 shows them.
        assert max(v for _, v in doc["points"] if v is not None) >= 1500


def test_concurrency_is_the_most_calls_in_flight(loaded):
    srv, name, recs = loaded
    lo, hi = window(recs)
    doc = series(srv, name, metric="concurrency", **{"from": lo, "to": hi, "step": 1})
    assert doc["unit"] == "calls"
    spans = [(start_ms(r), r["duration_ms"]) for r in recs if r["status"] in RAN]
    for t, v in doc["points"]:
        assert v == most_in_flight(spans, t, t + 1000), t
    # The three calls that slept side by side ran at once.
    assert max(v for _, v in doc["points"]) == 3


def test_gb_seconds_and_cost_match_usage(loaded):
    srv, name, recs = loaded
    lo, hi = window(recs)
    gbs = series(srv, name, metric="gb_seconds", **{"from": lo, "to": hi})
    assert gbs["unit"] == "GB-s"
    by_hand = sum(r["memory_mb"] * r["billed_ms"] for r in recs) / 1024 / 1000
    assert sum(v for _, v in gbs["points"]) == pytest.approx(by_hand, rel=1e-9)
    cost = series(srv, name, metric="cost", **{"from": lo, "to": hi})
    usage = requests.get(f"{srv.url}/v1/usage", params={
        "function": name, "granularity": "month", "from": "2000-01-01T00:00:00Z"},
        timeout=60).json()
    assert cost["unit"] == usage["currency"]
    assert sum(v for _, v in cost["points"]) == pytest.approx(usage["totals"]["cost"],
                                                               rel=1e-9)
    assert usage["totals"]["cost"] > 0


def test_defaults_are_the_last_hour_by_minute(loaded):
    srv, name, recs = loaded
    before = int(time.time() * 1000)
    doc = series(srv, name, metric="invocations")
    after = int(time.time() * 1000)
    assert doc["step"] == 60
    assert before <= doc["to"] <= after
    assert doc["from"] <= doc["to"] - 3600 * 1000 < doc["from"] + 60000
    assert len(doc["points"]) in (60, 61)
    assert sum(p[1] for p in doc["points"]) == 9
    # RFC 3339 times name the same window as milliseconds.
    iso = series(srv, name, metric="invocations", **{
        "from": "2026-01-01T00:00:00Z", "to": "2026-01-01T01:00:00.000+00:00", "step": 600})
    assert iso["from"] == 1767225600000 and iso["to"] == 1767229200000
    assert len(iso["points"]) == 6


@pytest.mark.parametrize("params,mentions", [
    ({}, "metric"),
    ({"metric": "latency"}, "metric"),
    ({"metric": "errors", "step": "0"}, "step"),
    ({"metric": "errors", "step": "1.5"}, "step"),
    ({"metric": "errors", "step": "-5"}, "step"),
    ({"metric": "errors", "step": "1"}, "1000"),
    ({"metric": "errors", "from": "yesterday"}, "from"),
    ({"metric": "errors", "to": "2026-02-30T00:00:00Z"}, "to"),
    ({"metric": "errors", "from": "2000", "to": "1000"}, "from"),
    ({"metric": "errors", "from": "0", "to": "86400000", "step": "60"}, "step"),
])
def test_bad_queries_name_the_parameter(loaded, params, mentions):
    srv, name, _ = loaded
    r = requests.get(f"{srv.url}/v1/functions/{name}/series", params=params, timeout=60)
    assert_error(r, 400, "bad_request", mentions)


def test_step_over_the_bound_names_the_smallest_that_fits(loaded):
    srv, name, _ = loaded
    r = requests.get(f"{srv.url}/v1/functions/{name}/series", params={
        "metric": "invocations", "from": "0", "to": "86400000", "step": "60"}, timeout=60)
    msg = assert_error(r, 400, "bad_request", "step")
    assert "1000" in msg and "at least 87 s" in msg, msg
    ok = series(srv, name, metric="invocations", **{"from": 0, "to": 86400000, "step": 87})
    assert len(ok["points"]) <= 1000


def test_unknown_function_is_404(loaded):
    srv, _, _ = loaded
    r = requests.get(f"{srv.url}/v1/functions/{unique('nope')}/series",
                     params={"metric": "invocations"}, timeout=60)
    assert_error(r, 404, "not_found")
