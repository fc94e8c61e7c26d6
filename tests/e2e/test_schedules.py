"""Schedules (docs/triggers.md): rate, cron and at expressions firing as
async events, driven by the server's test clock (--test-clock: the
schedules' clock stands still and moves only by POST /v1/test/clock, which
answers once the fires it caused are queued), so no test waits for real
minutes and none times anything: they count fires and records.

Covered: the scheduled-event shape and user input, catch-up of missed due
times (one fire, the latest), enabled=false, restarts and kill -9 that do
not fire a due time twice, daylight-saving changes in next_fires and in
fires, a function missing at fire time, the flexible window, bad inputs,
and the CLI."""

import json
import signal
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import requests

from conftest import (assert_error, deploy_py, metric, metrics, unique, wait_for)

ECHO = "def handler(event, context):\n    return event\n"
T0 = "2026-03-28T12:00:00Z"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def at(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def start(server, clock=T0, data_dir=None):
    return server("--test-clock", clock, "--sandbox-pool", "0", "--zygotes", "0",
                  data_dir=data_dir)


def put(srv, name, **body):
    return requests.put(f"{srv.url}/v1/schedules/{name}", json=body, timeout=60)


def put_ok(srv, name, **body):
    r = put(srv, name, **body)
    assert r.status_code in (200, 201), r.text
    return r.json()


def get(srv, name):
    r = requests.get(f"{srv.url}/v1/schedules/{name}", timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def advance(srv, seconds=None, now=None):
    body = {"advance_s": seconds} if now is None else {"now": now}
    r = requests.post(f"{srv.url}/v1/test/clock", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["now"]


def fired_dues(srv, name):
    """The due times the schedule has fired, oldest first."""
    return [f["due"] for f in reversed(get(srv, name)["fires"])]


def records(srv, fn):
    r = requests.get(f"{srv.url}/v1/functions/{fn}/invocations", params={"limit": 100},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def wait_done(srv, fn, request_ids):
    """Waits until each of request_ids has run to success; returns their
    records' events by request id."""
    want = set(request_ids)

    def done():
        recs = {x["request_id"]: x for x in records(srv, fn)}
        if all(recs.get(rid, {}).get("status") == "success" for rid in want):
            return recs
        return None
    recs = wait_for(f"{fn}'s scheduled calls {sorted(want)}", done, timeout=120)
    out = {}
    for rid in want:
        r = requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=60)
        assert r.status_code == 200, r.text
        out[rid] = r.json()["event"]
    assert set(recs) >= want
    return out


def fire_ids(srv, name):
    return [f["request_id"] for f in get(srv, name)["fires"]]


def test_rate_fires_each_due_time_once_with_the_scheduled_event(server):
    srv = start(server)
    fn = unique("tick")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "every-minute", expression="rate(1 minute)", function=fn)
    assert doc["next_fires"][:2] == ["2026-03-28T12:01:00Z", "2026-03-28T12:02:00Z"]
    assert doc["enabled"] is True and doc["timezone"] == "UTC" and doc["input"] is None
    # A rate starts at once, as EventBridge's does without a start date.
    assert fired_dues(srv, "every-minute") == ["2026-03-28T12:00:00Z"]

    advance(srv, 59)
    assert fired_dues(srv, "every-minute") == ["2026-03-28T12:00:00Z"]
    advance(srv, 1)
    assert fired_dues(srv, "every-minute") == ["2026-03-28T12:00:00Z", "2026-03-28T12:01:00Z"]
    # Ten minutes at once: the missed due times fire once, the latest.
    advance(srv, 600)
    dues = fired_dues(srv, "every-minute")
    assert dues == ["2026-03-28T12:00:00Z", "2026-03-28T12:01:00Z", "2026-03-28T12:11:00Z"]

    ids = fire_ids(srv, "every-minute")
    events = wait_done(srv, fn, ids)
    assert len(records(srv, fn)) == 3
    # Each record says which schedule started it.
    assert {r["trigger"] for r in records(srv, fn)} == {"schedule:every-minute"}
    arn = "arn:aws:scheduler:us-east-1:000000000000:schedule/default/every-minute"
    times = sorted(e["time"] for e in events.values())
    assert times == dues
    for ev in events.values():
        assert ev["version"] == "0" and ev["detail-type"] == "Scheduled Event"
        assert ev["source"] == "aws.events" and ev["account"] == "000000000000"
        assert ev["region"] == "us-east-1" and ev["resources"] == [arn]
        assert ev["detail"] == {} and len(ev["id"]) == 36
    assert len({e["id"] for e in events.values()}) == 3

    samples = metrics(srv)
    assert metric(samples, "mayfly_schedule_fires_total", schedule="every-minute",
                  outcome="queued") == 3


def test_cron_in_a_zone_with_input_follows_daylight_saving(server):
    srv = start(server, clock="2026-03-27T12:00:00Z")
    fn = unique("nightly")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "nightly", expression="cron(30 2 * * ? *)", timezone="Europe/Paris",
                 function=fn, input={"job": "nightly", "n": [1, 2]})
    # 02:30 does not exist in Paris on March 29, 2026: that day is skipped.
    assert doc["next_fires"] == [
        "2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00",
        "2026-03-31T02:30:00+02:00", "2026-04-01T02:30:00+02:00",
        "2026-04-02T02:30:00+02:00"]
    assert doc["input"] == {"job": "nightly", "n": [1, 2]}
    assert fired_dues(srv, "nightly") == []

    advance(srv, now="2026-03-28T01:29:59Z")
    assert fired_dues(srv, "nightly") == []
    advance(srv, now="2026-03-28T01:30:00Z")
    assert fired_dues(srv, "nightly") == ["2026-03-28T01:30:00Z"]
    advance(srv, now="2026-03-30T00:29:59Z")  # through the skipped night
    assert fired_dues(srv, "nightly") == ["2026-03-28T01:30:00Z"]
    advance(srv, now="2026-03-30T00:30:00Z")
    assert fired_dues(srv, "nightly") == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z"]

    events = wait_done(srv, fn, fire_ids(srv, "nightly"))
    assert list(events.values()) == [{"job": "nightly", "n": [1, 2]}] * 2

    # Autumn: 02:30 on October 25 comes twice and is due once. (The jump
    # to October catches up once, with the 24th.)
    advance(srv, now="2026-10-24T12:00:00Z")
    nf = get(srv, "nightly")["next_fires"]
    assert nf[:2] == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    advance(srv, now="2026-10-25T00:30:00Z")
    advance(srv, now="2026-10-25T01:30:00Z")  # the wall clock reads 02:30 again
    dues = fired_dues(srv, "nightly")
    assert dues[2:] == ["2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z"]


def test_next_fires_across_a_change_in_new_york_and_a_quarter_hourly_cron(server):
    srv = start(server, clock="2026-11-01T04:50:00Z")  # 00:50 EDT
    fn = unique("qh")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "quarter", expression="cron(0/15 * * * ? *)",
                 timezone="America/New_York", function=fn)
    # 01:00-01:59 is passed twice that night: its times show (and fire)
    # once, then 02:00 EST follows 01:45 EDT an hour and a quarter later.
    assert doc["next_fires"] == [
        "2026-11-01T01:00:00-04:00", "2026-11-01T01:15:00-04:00",
        "2026-11-01T01:30:00-04:00", "2026-11-01T01:45:00-04:00",
        "2026-11-01T02:00:00-05:00"]
    advance(srv, now="2026-11-01T07:00:00Z")  # 02:00 EST
    # One fire for all that went by: the latest due time.
    assert fired_dues(srv, "quarter") == ["2026-11-01T07:00:00Z"]


def test_at_fires_once_then_has_no_next_fire(server):
    srv = start(server)
    fn = unique("once")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "once", expression="at(2026-03-28T14:00:00)", timezone="Europe/Paris",
                 function=fn)
    assert doc["next_fires"] == ["2026-03-28T14:00:00+01:00"]
    advance(srv, now="2026-03-28T12:59:59Z")
    assert fired_dues(srv, "once") == []
    advance(srv, now="2026-03-28T13:00:00Z")
    assert fired_dues(srv, "once") == ["2026-03-28T13:00:00Z"]
    advance(srv, 86400 * 400)
    doc = get(srv, "once")
    assert doc["next_fires"] == [] and len(doc["fires"]) == 1
    assert doc["last_fire"]["due"] == "2026-03-28T13:00:00Z"
    wait_done(srv, fn, fire_ids(srv, "once"))


def test_disabled_schedules_fire_nothing_and_count_again_when_enabled(server):
    srv = start(server)
    fn = unique("off")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "off", expression="rate(5 minutes)", function=fn, enabled=False)
    assert doc["enabled"] is False and doc["next_fires"] == []
    advance(srv, 3600)
    assert fired_dues(srv, "off") == []
    # Enabled again, it counts from now: the hour it was off does not fire.
    r = put(srv, "off", expression="rate(5 minutes)", function=fn)
    assert r.status_code == 200, r.text
    assert fired_dues(srv, "off") == ["2026-03-28T13:00:00Z"]
    advance(srv, 300)
    assert fired_dues(srv, "off") == ["2026-03-28T13:00:00Z", "2026-03-28T13:05:00Z"]
    wait_done(srv, fn, fire_ids(srv, "off"))
    assert len(records(srv, fn)) == 2


def test_restart_catches_up_once_and_never_fires_a_due_time_twice(server, tmp_path):
    data = tmp_path / "data"
    srv = start(server, data_dir=data)
    fn = unique("durable")
    deploy_py(srv, fn, ECHO)
    put_ok(srv, "durable", expression="rate(1 minute)", function=fn)
    advance(srv, 60)
    assert fired_dues(srv, "durable") == ["2026-03-28T12:00:00Z", "2026-03-28T12:01:00Z"]
    srv.stop()

    # Down for five due times and a half: one fire at start, the latest.
    srv = start(server, clock="2026-03-28T12:06:30Z", data_dir=data)
    dues = fired_dues(srv, "durable")
    assert dues == ["2026-03-28T12:00:00Z", "2026-03-28T12:01:00Z", "2026-03-28T12:06:00Z"]
    srv.stop()

    # The same clock again: nothing is due that has not fired.
    srv = start(server, clock="2026-03-28T12:06:30Z", data_dir=data)
    assert fired_dues(srv, "durable") == dues
    ids = fire_ids(srv, "durable")
    wait_done(srv, fn, ids)
    assert sorted(x["request_id"] for x in records(srv, fn)) == sorted(ids)
    # And the clock goes on from there.
    advance(srv, 30)
    assert fired_dues(srv, "durable")[-1] == "2026-03-28T12:07:00Z"


def test_kill_9_after_a_fire_keeps_it_and_runs_it(server, tmp_path):
    data = tmp_path / "data"
    srv = start(server, data_dir=data)
    fn = unique("crash")
    # The function is slow enough that the kill lands while events wait.
    deploy_py(srv, fn, "import time\ndef handler(event, context):\n"
                       "    time.sleep(0.2)\n    return event\n")
    put_ok(srv, "crash", expression="rate(1 minute)", function=fn)
    for _ in range(3):
        advance(srv, 60)
    before = fired_dues(srv, "crash")
    assert len(before) == 4
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(60)

    srv = start(server, clock="2026-03-28T12:03:00Z", data_dir=data)
    assert fired_dues(srv, "crash") == before
    ids = fire_ids(srv, "crash")
    wait_done(srv, fn, ids)
    # Each due time ran, and none twice as a new event (a call cut short
    # by the kill is the same event run again).
    assert sorted({x["request_id"] for x in records(srv, fn)}) == sorted(ids)


def test_a_missing_function_at_fire_time_is_logged_and_counted(server):
    srv = start(server)
    fn = unique("gone")
    deploy_py(srv, fn, ECHO)
    put_ok(srv, "orphan", expression="rate(1 minute)", function=fn)
    assert len(fired_dues(srv, "orphan")) == 1
    r = requests.delete(f"{srv.url}/v1/functions/{fn}", timeout=60)
    assert r.status_code == 204, r.text
    advance(srv, 60)
    doc = get(srv, "orphan")
    assert len(doc["fires"]) == 2
    last = doc["last_fire"]
    assert last["due"] == "2026-03-28T12:01:00Z" and last["request_id"] is None
    assert fn in last["error"]
    samples = metrics(srv)
    assert metric(samples, "mayfly_schedule_fires_total", schedule="orphan",
                  outcome="failed") == 1
    # It goes on, and fires again once the function is back.
    deploy_py(srv, fn, ECHO)
    advance(srv, 60)
    last = get(srv, "orphan")["last_fire"]
    assert last["error"] is None and last["request_id"]
    wait_done(srv, fn, [last["request_id"]])


def test_flexible_window_delays_a_fire_within_it(server):
    srv = start(server)
    fn = unique("flex")
    deploy_py(srv, fn, ECHO)
    put_ok(srv, "flex", expression="rate(1 hour)", function=fn, flexible_window_min=15)
    seen = []
    for minute in range(16):
        seen.append(len(fired_dues(srv, "flex")))
        if minute < 15:
            advance(srv, 60)
    # Fired once, within the window after the due time, for that due time.
    assert seen[-1] == 1 and all(n <= 1 for n in seen)
    last = get(srv, "flex")["last_fire"]
    assert last["due"] == "2026-03-28T12:00:00Z"
    assert at(last["due"]) <= at(last["fired"]) <= at(last["due"]) + timedelta(minutes=15)
    # A put that changes nothing does not move the plan.
    put_ok(srv, "flex", expression="rate(1 hour)", function=fn, flexible_window_min=15)
    assert len(fired_dues(srv, "flex")) == 1


def test_list_update_and_delete(server):
    srv = start(server)
    fn = unique("ls")
    deploy_py(srv, fn, ECHO)
    put_ok(srv, "b-sched", expression="cron(0 12 * * ? *)", function=fn)
    put_ok(srv, "a.sched", expression="rate(2 hours)", function=fn, enabled=False)
    r = requests.get(f"{srv.url}/v1/schedules", timeout=60)
    assert r.status_code == 200
    names = [s["name"] for s in r.json()["schedules"]]
    assert names == ["a.sched", "b-sched"]
    r = put(srv, "b-sched", expression="cron(0 13 * * ? *)", function=fn)
    assert r.status_code == 200 and r.json()["expression"] == "cron(0 13 * * ? *)"
    assert r.json()["created"] == "2026-03-28T12:00:00Z"
    r = requests.delete(f"{srv.url}/v1/schedules/b-sched", timeout=60)
    assert r.status_code == 204
    assert_error(requests.get(f"{srv.url}/v1/schedules/b-sched", timeout=60), 404,
                 "not_found", "b-sched")
    assert_error(requests.delete(f"{srv.url}/v1/schedules/b-sched", timeout=60), 404,
                 "not_found", "b-sched")


@pytest.mark.parametrize("body, mentions", [
    ({"expression": "cron(61 * * * ? *)", "function": "FN"}, ["minutes", "61"]),
    ({"expression": "cron(0 12 * * * *)", "function": "FN"}, ["?"]),
    ({"expression": "rate(0 minutes)", "function": "FN"}, ["rate"]),
    ({"expression": "every day", "function": "FN"}, ["expression"]),
    ({"function": "FN"}, ["expression"]),
    ({"expression": 5, "function": "FN"}, ["expression"]),
    ({"expression": "rate(1 minute)"}, ["function"]),
    ({"expression": "rate(1 minute)", "function": "no-such-fn"}, ["function", "no-such-fn"]),
    ({"expression": "rate(1 minute)", "function": "bad name"}, ["function"]),
    ({"expression": "rate(1 minute)", "function": "FN", "timezone": "Mars/Olympus"},
     ["timezone", "Mars/Olympus"]),
    ({"expression": "rate(1 minute)", "function": "FN", "timezone": "../../etc/passwd"},
     ["timezone"]),
    ({"expression": "rate(1 minute)", "function": "FN", "timezone": "Europe"}, ["timezone"]),
    ({"expression": "rate(1 minute)", "function": "FN", "timezone": 1}, ["timezone"]),
    ({"expression": "rate(1 minute)", "function": "FN", "enabled": "yes"}, ["enabled"]),
    ({"expression": "rate(1 minute)", "function": "FN", "flexible_window_min": 1441},
     ["flexible_window_min"]),
    ({"expression": "rate(1 minute)", "function": "FN", "flexible_window_min": -1},
     ["flexible_window_min"]),
    ({"expression": "rate(1 minute)", "function": "FN", "target": "x"}, ["target"]),
])
def test_bad_schedules_get_400_naming_the_problem(shared_server, body, mentions):
    srv = shared_server
    fn = "schedule-target"
    deploy_py(srv, fn, ECHO)
    body = {k: (fn if v == "FN" else v) for k, v in body.items()}
    assert_error(put(srv, "bad", **body), 400, "bad_request", *mentions)
    # Nothing was kept.
    assert_error(requests.get(f"{srv.url}/v1/schedules/bad", timeout=60), 404, "not_found")


def test_bad_bodies_names_and_the_clock_route(shared_server):
    srv = shared_server
    url = f"{srv.url}/v1/schedules"
    assert_error(requests.put(f"{url}/x", data=b"{nope", timeout=60), 400, "bad_request",
                 "JSON")
    assert_error(requests.put(f"{url}/x", data=b"[1]", timeout=60), 400, "bad_request",
                 "object")
    assert_error(requests.put(f"{url}/{'n' * 65}", json={}, timeout=60), 400, "bad_request",
                 "name")
    assert_error(requests.get(f"{url}/bad%20name", timeout=60), 400, "bad_request", "name")
    big = {"expression": "rate(1 minute)", "function": "x", "input": "a" * (300 << 10)}
    r = requests.put(f"{url}/x", json=big, timeout=60)
    assert r.status_code in (400, 413), r.text
    # Without --test-clock there is no clock to move.
    r = requests.post(f"{srv.url}/v1/test/clock", json={"advance_s": 60}, timeout=60)
    assert r.status_code in (404, 405), r.text


def test_the_clock_route_refuses_bad_moves(server):
    srv = start(server)
    clock = f"{srv.url}/v1/test/clock"
    assert_error(requests.post(clock, json={"advance_s": -1}, timeout=60), 400, "bad_request",
                 "advance_s")
    assert_error(requests.post(clock, json={"now": "yesterday"}, timeout=60), 400,
                 "bad_request", "now")
    assert_error(requests.post(clock, json={"now": "2020-01-01T00:00:00Z"}, timeout=60), 400,
                 "bad_request", "forward")
    assert_error(requests.post(clock, json={}, timeout=60), 400, "bad_request", "advance_s")


def test_server_refuses_bad_clock_flags(tmp_path):
    from conftest import MAYFLY_BIN
    for flag, value in [("--test-clock", "soon"), ("--clock-offset", "1.5"),
                        ("--clock-offset", "99999999999")]:
        p = subprocess.run([MAYFLY_BIN, "server", "--data", str(tmp_path), flag, value],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2, p.stderr
        assert flag in p.stderr


def test_clock_offset_moves_the_real_clock(server):
    # A clock a year ahead: the schedule counts from then.
    srv = server("--clock-offset", str(366 * 86400), "--sandbox-pool", "0", "--zygotes", "0")
    fn = unique("offset")
    deploy_py(srv, fn, ECHO)
    doc = put_ok(srv, "ahead", expression="rate(1 day)", function=fn)
    created = at(doc["created"])
    assert created > datetime.now(timezone.utc) + timedelta(days=360)
    last = wait_for("the first fire", lambda: get(srv, "ahead")["last_fire"])
    assert at(last["due"]) >= created - timedelta(seconds=1)


def test_cli_round_trip(server):
    srv = start(server)
    fn = unique("cli")
    deploy_py(srv, fn, ECHO)
    p = srv.cli("schedule", "put", "nightly", "--expression", "cron(30 2 * * ? *)",
                "--function", fn, "--timezone", "Europe/Paris", "--input", '{"a": 1}',
                "--flexible-window", "5")
    assert p.returncode == 0, p.stderr
    # 02:30 on the 28th has gone by at noon, and the 29th has none.
    assert p.stdout.strip() == "created schedule nightly; next fire: 2026-03-30T02:30:00+02:00"
    p = srv.cli("schedule", "put", "off", "--expression", "rate(1 hour)", "--function", fn,
                "--disabled")
    assert p.returncode == 0, p.stderr
    p = srv.cli("schedule", "ls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "EXPRESSION", "TIMEZONE"]
    assert any(ln.startswith("nightly") and "Europe/Paris" in ln for ln in lines)
    assert any(ln.startswith("off") and "disabled" in ln for ln in lines)
    p = srv.cli("schedule", "ls", "--json")
    assert [s["name"] for s in json.loads(p.stdout)["schedules"]] == ["nightly", "off"]
    p = srv.cli("schedule", "get", "nightly")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["input"] == {"a": 1} and doc["flexible_window_min"] == 5
    assert len(doc["next_fires"]) == 5
    p = srv.cli("schedule", "put", "bad", "--expression", "rate(1 minute)", "--function",
                "no-such-fn")
    assert p.returncode == 1 and "no-such-fn" in p.stderr
    p = srv.cli("schedule", "put", "bad", "--expression", "rate(1 minute)")
    assert p.returncode == 2 and "--function" in p.stderr
    p = srv.cli("schedule", "put", "bad", "--expression", "rate(1 minute)", "--function", fn,
                "--input", "{nope")
    assert p.returncode == 2 and "--input" in p.stderr
    p = srv.cli("schedule", "rm", "nightly")
    assert p.returncode == 0 and "deleted schedule nightly" in p.stdout
    p = srv.cli("schedule", "rm", "nightly")
    assert p.returncode == 1 and "nightly" in p.stderr
    p = srv.cli("schedule", "get", "nightly")
    assert p.returncode == 1
    p = srv.cli("schedule", "frobnicate")
    assert p.returncode == 2
