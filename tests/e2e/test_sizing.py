"""Sizing (docs/sizing.md): the right-sizing advisor (GET
/v1/functions/{name}/advice, `mayfly advise`) reads a function's recent
records and says whether its memory fits, and power tuning (POST
/v1/functions/{name}/tune, `mayfly tune`) runs an event against temporary
copies of a function at several sizes without touching the live function.

Every function here really runs in its sandbox; memory peaks come from the
instance's cgroup and durations from the CPU share memory buys. No test
bounds the wall clock: durations are compared with each other, within one
tune."""

import json
import threading

import pytest
import requests

from conftest import (assert_error, b64, database, deploy_py, invoke_ok, make_zip, metric,
                      metrics, unique, wait_for)

# Holds $MB MiB from its start (b"x" * n writes every byte), so its
# instance's memory high-water mark is that much above the runtime's own,
# while its calls take next to no CPU. Each call waits 50 ms, as one that
# waits on I/O does: a size's cost then follows its memory, whatever the
# machine's load. A call of a millisecond or so would be billed 1 ms or 2
# by how busy the machine is, and a size's cost compared with another's
# would follow that rounding.
HOLD_PY = """
import os, time
HELD = b"x" * (int(os.environ["MB"]) << 20)
def handler(event, context):
    time.sleep(0.05)
    return len(HELD)
"""

# Spins the CPU: its duration follows the CPU share its size buys.
SPIN_PY = """
def handler(event, context):
    s = 0
    for i in range(event.get("n", 300000)):
        s += i * i
    return s
"""

# Holds 300 MiB, a MiB at a time, every page written: out of memory below
# that.
HUNGRY_PY = """
def handler(event, context):
    hoard = []
    for _ in range(300):
        hoard.append(b"x" * (1 << 20))
    return len(hoard)
"""

SLEEP_PY = """
import time
def handler(event, context):
    time.sleep(event.get("s", 1))
    return "slept"
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def advice(srv, name, **kw):
    r = requests.get(f"{srv.url}/v1/functions/{name}/advice", timeout=60, **kw)
    assert r.status_code == 200, r.text
    return r.json()


def records(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}/invocations", params={"limit": 1000},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def call_n(srv, name, n, event):
    for _ in range(n):
        invoke_ok(srv, name, event, timeout=120)
    wait_for(f"{n} records of {name}", lambda: len(records(srv, name)) >= n)


def tune(srv, name, body, timeout=900):
    return requests.post(f"{srv.url}/v1/functions/{name}/tune", json=body, timeout=timeout)


def test_a_function_near_its_limit_is_told_to_grow(srv):
    name = unique("near")
    deploy_py(srv, name, HOLD_PY, memory_mb=256, timeout_s=120, env={"MB": "215"})
    call_n(srv, name, 20, {})
    peaks = [rec["max_rss_kb"] for rec in records(srv, name)]
    # The instance's high-water mark counts what its function holds.
    assert min(peaks) >= 215 * 1024, peaks
    a = advice(srv, name)
    assert a["function"] == name and a["memory_mb"] == 256
    assert a["confidence"] == "medium", a
    assert a["memory"]["verdict"] == "oom_risk", a
    assert a["memory"]["used_ratio"] > 0.8, a
    assert a["recommended"]["memory_mb"] > 256, a
    assert a["recommended"]["change"] == "increase"
    # The peak fits in the new size with room to spare.
    assert a["memory"]["peak_p99_mb"] <= 0.6 * a["recommended"]["memory_mb"]
    assert a["cpu"]["cpu_bound"] is False, a
    assert a["recommended"]["cost_per_million"] > a["current"]["cost_per_million"]
    ev = a["evidence"]
    assert (ev["records"], ev["successes"], ev["ooms"], ev["timeouts"]) == (20, 20, 0, 0), ev
    assert ev["from"] <= ev["to"]


def test_a_function_using_a_tenth_is_told_to_shrink_and_five_calls_are_unsure(srv):
    name = unique("roomy")
    deploy_py(srv, name, HOLD_PY, memory_mb=1024, timeout_s=120, env={"MB": "95"})
    call_n(srv, name, 5, {})
    a = advice(srv, name)
    # Five calls: the waste is seen, but no smaller size is advised yet.
    assert a["confidence"] == "low", a
    assert a["memory"]["verdict"] == "waste", a
    assert "unsure" in a["message"] and "only 5 calls" in a["message"], a["message"]
    assert a["recommended"]["memory_mb"] == 1024 and a["recommended"]["change"] == "none", a
    assert a["evidence"]["records"] == 5

    call_n(srv, name, 20, {})
    a = advice(srv, name)
    assert a["confidence"] == "medium", a
    assert a["memory"]["verdict"] == "waste", a
    assert a["memory"]["used_ratio"] < 0.3
    assert a["recommended"]["memory_mb"] < 1024, a
    assert a["recommended"]["change"] == "decrease"
    assert a["recommended"]["cost_per_million"] < a["current"]["cost_per_million"]
    assert a["memory"]["peak_p99_mb"] <= 0.6 * a["recommended"]["memory_mb"]


def test_advice_without_calls_says_so(srv):
    name = unique("idle")
    deploy_py(srv, name, SPIN_PY, memory_mb=512)
    a = advice(srv, name)
    assert a["confidence"] == "none"
    assert "no calls" in a["message"]
    assert a["evidence"]["records"] == 0
    assert "recommended" not in a


def test_advice_of_a_missing_or_badly_named_function(srv):
    r = requests.get(f"{srv.url}/v1/functions/{unique('nope')}/advice", timeout=60)
    assert_error(r, 404, "not_found")
    r = requests.get(f"{srv.url}/v1/functions/bad.name/advice", timeout=60)
    assert_error(r, 400, "bad_request", "name")


def live_state(srv, name):
    """What tuning must leave alone: the function, its records, and its
    series in /metrics (the usage counters aside: the runs are paid for)."""
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()
    fn.pop("instances", None)
    recs = [(x["request_id"], x["status"], x["memory_mb"]) for x in records(srv, name)]
    # The live instance's idle memory-seconds grow while it waits, tune or
    # not: that series is left out.
    series = {k: v for k, v in metrics(srv).items()
              if ("function", name) in k[1] and not k[0].startswith("mayfly_usage_")
              and k[0] != "mayfly_idle_instance_memory_mb_seconds_total"}
    return fn, recs, series


def reported_requests(srv, name):
    r = requests.get(f"{srv.url}/v1/usage", params={"function": name}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["totals"]["requests"]


def reserved(srv):
    return metric(metrics(srv), "mayfly_instance_memory_bytes", kind="reserved")


def test_tuning_a_cpu_bound_function_leaves_the_live_one_alone(srv):
    name = unique("spin")
    deploy_py(srv, name, SPIN_PY, memory_mb=256, timeout_s=120)
    call_n(srv, name, 2, {"n": 1000})
    before = live_state(srv, name)
    held = reserved(srv)
    used_before = metric(metrics(srv), "mayfly_usage_requests_total", function=name)
    reported_before = reported_requests(srv, name)

    r = tune(srv, name, {"event": {"n": 400000}, "memory_mb": [1024, 128], "runs": 3})
    assert r.status_code == 200, r.text
    t = r.json()
    assert t["function"] == name and t["strategy"] == "balanced" and t["runs"] == 3
    rows = {row["memory_mb"]: row for row in t["sizes"]}
    assert [row["memory_mb"] for row in t["sizes"]] == [128, 1024]
    for row in rows.values():
        assert (row["runs"], row["successes"], row["errors"], row["error_types"]) == \
            (3, 3, 0, []), row
        assert row["cold_ms"] is not None and row["cold_init_ms"] is not None
        assert row["p50_ms"] <= row["p90_ms"]
        assert row["cost_per_million"] > 0
    # 1024 MB buys eight times the CPU of 128 MB: far faster.
    assert rows[128]["p50_ms"] > 2 * rows[1024]["p50_ms"], rows
    assert t["recommended"]["memory_mb"] in rows

    # The live function, its records and its series are as they were; its
    # tenant was metered for the six runs.
    assert live_state(srv, name) == before
    assert metric(metrics(srv), "mayfly_usage_requests_total", function=name) == \
        used_before + 6
    # And the usage report, which budgets read too, has them durably.
    wait_for("the runs in the usage report",
             lambda: reported_requests(srv, name) == reported_before + 6)
    # The copies show in no series of their own either.
    assert not [k for k in metrics(srv) if any(v.startswith("#") for _, v in k[1])]
    # The copies' instances are gone.
    wait_for("the copies' instances to stop", lambda: reserved(srv) <= held)


def test_a_memory_hungry_function_runs_out_at_the_small_sizes(srv):
    name = unique("hungry")
    deploy_py(srv, name, HUNGRY_PY, memory_mb=2048, timeout_s=120)
    held = reserved(srv)
    for strategy in ("cost", "speed"):
        r = tune(srv, name, {"memory_mb": [128, 256, 1024], "runs": 2, "strategy": strategy})
        assert r.status_code == 200, r.text
        t = r.json()
        rows = {row["memory_mb"]: row for row in t["sizes"]}
        for small in (128, 256):
            assert rows[small]["successes"] == 0, rows[small]
            assert rows[small]["error_types"] == ["oom"], rows[small]
            assert rows[small]["p50_ms"] is None
        assert rows[1024]["successes"] == 2 and rows[1024]["error_types"] == []
        # A size that ran out of memory is never the answer.
        assert t["recommended"]["memory_mb"] == 1024, t
        assert t["strategy"] == strategy
    assert records(srv, name) == []
    wait_for("the copies' instances to stop", lambda: reserved(srv) <= held)


def test_a_second_tune_of_the_same_function_is_refused(srv):
    name = unique("sleepy")
    deploy_py(srv, name, SLEEP_PY, memory_mb=128, timeout_s=120)
    held = reserved(srv)
    first = {}

    def run():
        first["r"] = tune(srv, name, {"event": {"s": 1}, "memory_mb": [128], "runs": 5})

    th = threading.Thread(target=run)
    th.start()
    try:
        wait_for("the first tune's instance", lambda: reserved(srv) > held)
        r = tune(srv, name, {"memory_mb": [128], "runs": 1})
        assert_error(r, 409, "conflict", "tuned already")
    finally:
        th.join(300)
    assert first["r"].status_code == 200, first["r"].text
    assert first["r"].json()["sizes"][0]["successes"] == 5
    # Once it is over, the function may be tuned again.
    r = tune(srv, name, {"event": {"s": 0}, "memory_mb": [128], "runs": 1})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("body,field", [
    ({"runs": 0}, "runs"),
    ({"runs": 101}, "runs"),
    ({"runs": "2"}, "runs"),
    ({"memory_mb": []}, "memory_mb"),
    ({"memory_mb": [64]}, "memory_mb"),
    ({"memory_mb": [20000]}, "memory_mb"),
    ({"memory_mb": [256, 256]}, "memory_mb"),
    ({"memory_mb": "256"}, "memory_mb"),
    ({"strategy": "fastest"}, "strategy"),
    ({"event": {}, "color": "red"}, "color"),
])
def test_bad_tune_requests_name_the_field(srv, body, field):
    name = unique("bad")
    deploy_py(srv, name, SPIN_PY)
    assert_error(tune(srv, name, body), 400, "bad_request", field)


def test_tune_refuses_what_is_not_json_and_unknown_functions(srv):
    name = unique("bad")
    deploy_py(srv, name, SPIN_PY)
    r = requests.post(f"{srv.url}/v1/functions/{name}/tune", data=b"{not json", timeout=60)
    assert_error(r, 400, "bad_request", "body")
    r = requests.post(f"{srv.url}/v1/functions/{name}/tune", data=b"[128]", timeout=60)
    assert_error(r, 400, "bad_request", "body")
    assert_error(tune(srv, unique("nope"), {}), 404, "not_found")
    assert_error(tune(srv, "bad.name", {}), 400, "bad_request", "name")


def test_the_cli_advises_and_tunes(srv, tmp_path):
    name = unique("cli")
    deploy_py(srv, name, SPIN_PY, memory_mb=256, timeout_s=120)
    out = srv.cli("advise", name)
    assert out.returncode == 0, out.stderr
    assert "confidence   none" in out.stdout and "no calls" in out.stdout
    call_n(srv, name, 3, {"n": 1000})
    out = srv.cli("advise", name)
    assert out.returncode == 0, out.stderr
    assert "confidence   low" in out.stdout and "unsure" in out.stdout, out.stdout
    assert "recommended" in out.stdout
    out = srv.cli("advise", name, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["evidence"]["records"] == 3
    out = srv.cli("advise", unique("nope"))
    assert out.returncode == 1 and "not_found" in out.stderr
    assert srv.cli("advise").returncode == 2

    event = tmp_path / "event.json"
    event.write_text(json.dumps({"n": 1000}))
    out = srv.cli("tune", name, "--event", event, "--memory", "128,256", "--runs", "2",
                  "--strategy", "cost", timeout=900)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["MEMORY_MB", "COLD_MS", "P50_MS", "P90_MS", "COST_PER_MILLION",
                                "OK", "ERRORS"], out.stdout
    assert lines[1].split()[0] == "128" and lines[1].split()[5] == "2/2"
    assert lines[2].split()[0] == "256"
    assert "recommended:" in out.stdout and "strategy cost" in out.stdout
    out = srv.cli("tune", name, "--event", event, "--memory", "128", "--runs", "1", "--json",
                  timeout=900)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["sizes"][0]["memory_mb"] == 128

    # The server's refusal: exit 1, its message on stderr.
    out = srv.cli("tune", name, "--event", event, "--runs", "0")
    assert out.returncode == 1 and "runs" in out.stderr, out.stderr
    # Bad usage: exit 2.
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    for args in (["--event", bad], ["--memory", "128,abc", "--event", event],
                 ["--strategy", "cheap", "--event", event], []):
        out = srv.cli("tune", name, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
    out = srv.cli("tune", "--help")
    assert out.returncode == 0 and "really runs" in out.stdout


KEYS = {
    "dev": ("AKIASIZEDEV00000001", "dev-secret", "default", "developer"),
    "other": ("AKIASIZEOTHER000001", "other-secret", "team-b", "developer"),
}


def auth(role):
    key_id, secret, _, _ = KEYS[role]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


def test_names_resolve_within_the_callers_tenant(server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    srv = server("--keys", keys)
    name = unique("mine")
    body = {"runtime": "python3", "handler": "app.handler", "memory_mb": 512, "timeout_s": 60,
            "code": {"zip_base64": b64(make_zip({"app.py": SPIN_PY}))}}
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=auth("other"),
                     timeout=60)
    assert r.status_code == 201, r.text
    for _ in range(2):
        r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", data=b'{"n": 100}',
                          headers=auth("other"), timeout=60)
        assert r.status_code == 200, r.text

    def advised():
        r = requests.get(f"{srv.url}/v1/functions/{name}/advice", headers=auth("other"),
                         timeout=60)
        assert r.status_code == 200, r.text
        return r.json() if r.json()["evidence"]["records"] == 2 else None
    a = wait_for("the advice over both calls", advised)
    assert a["function"] == name and a["memory_mb"] == 512
    # Another tenant's key does not see it, to advise or to tune.
    r = requests.get(f"{srv.url}/v1/functions/{name}/advice", headers=auth("dev"), timeout=60)
    assert_error(r, 404, "not_found")
    r = requests.post(f"{srv.url}/v1/functions/{name}/tune", json={"runs": 1},
                      headers=auth("dev"), timeout=60)
    assert_error(r, 404, "not_found")
    r = requests.post(f"{srv.url}/v1/functions/{name}/tune",
                      json={"event": {"n": 100}, "memory_mb": [256], "runs": 2},
                      headers=auth("other"), timeout=900)
    assert r.status_code == 200, r.text
    assert r.json()["function"] == name and r.json()["sizes"][0]["successes"] == 2


def test_on_postgresql_the_advice_reads_the_records_and_tuning_leaves_them(server, pg):
    db = database(pg, "mayfly_sizing")
    srv = server("--store", db, "--sandbox-pool", "0", "--zygotes", "0")
    name = unique("pg")
    deploy_py(srv, name, SPIN_PY, memory_mb=1024, timeout_s=120)
    call_n(srv, name, 3, {"n": 1000})
    a = advice(srv, name)
    assert a["confidence"] == "low" and a["evidence"]["records"] == 3, a
    before = live_state(srv, name)
    reported_before = reported_requests(srv, name)
    r = tune(srv, name, {"event": {"n": 1000}, "memory_mb": [128, 256], "runs": 2})
    assert r.status_code == 200, r.text
    assert [row["successes"] for row in r.json()["sizes"]] == [2, 2]
    assert live_state(srv, name) == before
    wait_for("the runs in the usage report",
             lambda: reported_requests(srv, name) == reported_before + 4)
    assert advice(srv, name)["evidence"]["records"] == 3
