"""Keep-alive that learns (docs/keep-alive.md): keep_warm "adaptive" keeps
an idle instance warm as long as the function's history of idle times
says, and starts one again ahead of an expected call, and is the server's
default; "fixed" keeps it --idle-timeout. Every check reads the server's own records,
counters and the function's JSON; the waits are generous deadlines."""

import time

import pytest
import requests

from conftest import (
    assert_server_refuses,
    assert_error,
    deploy_py,
    fn_body,
    get_record,
    invoke_ok,
    metric,
    metrics,
    unique,
    wait_for,
)

NOOP = "def handler(event, context):\n    return 'ok'\n"


def keep_warm(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["keep_warm"]


def instances(srv, name, *states):
    samples = metrics(srv)
    return sum(metric(samples, "mayfly_instances", function=name, state=s) for s in states)


def call(srv, name):
    r = invoke_ok(srv, name)
    return get_record(srv, r.headers["X-Mayfly-Request-Id"])


def test_a_periodic_function_is_prewarmed_and_not_kept_warm_between_calls(server):
    # Bins of 4 s and a call every 6 s (the "every 90 s" with
    # bins of a minute, compressed): every idle time falls in bin 1, so
    # once learnt the instance stops after each call and a new one starts
    # 3.6 s after it, warm until 8.8 s. The fixed keep-alive (600 s) would
    # keep it warm the whole time. max_concurrency 1: a pre-warmed
    # instance still starting when the call comes is the one that serves
    # it, however slow the machine.
    srv = server("--keep-alive-bin-s", "4", "--idle-timeout", "600")
    name = unique("ka-periodic")
    deploy_py(srv, name, NOOP, keep_warm="adaptive", max_concurrency=1)
    period = 6.0
    learning = 6  # five idle times, and the call that ends the fifth
    for _ in range(learning):
        call(srv, name)
        time.sleep(period)
    kw = keep_warm(srv, name)
    assert kw["policy"] == "adaptive" and kw["basis"] == "histogram", kw
    assert kw["samples"] >= 5, kw
    assert 0 < kw["prewarm_s"] < period < kw["prewarm_s"] + kw["keep_alive_s"], kw

    before = metrics(srv)
    started = time.monotonic()
    measured = 4
    for i in range(measured):
        rec = call(srv, name)
        assert rec["prewarmed"] is True, rec
        assert rec["cold_start"] is False, rec
        if i < measured - 1:
            time.sleep(period)
    elapsed = time.monotonic() - started
    after = metrics(srv)
    used = (metric(after, "mayfly_prewarms_total", function=name, outcome="used")
            - metric(before, "mayfly_prewarms_total", function=name, outcome="used"))
    assert used == measured
    # Between calls there was no instance for the pre-warm window: idle
    # memory-seconds well under what an always-warm instance (the fixed
    # policy) holds over the same span.
    idle = (metric(after, "mayfly_idle_instance_memory_mb_seconds_total", function=name)
            - metric(before, "mayfly_idle_instance_memory_mb_seconds_total", function=name))
    assert 0 < idle < 0.8 * 128 * elapsed, (idle, elapsed)

    # Paused right after a call (its instance stopped, its pre-warm due in
    # 3.6 s): no instance starts for it.
    r = requests.put(f"{srv.url}/v1/functions/{name}", json={"max_concurrency": 0}, timeout=30)
    assert r.status_code == 200, r.text
    time.sleep(3 * period)
    samples = metrics(srv)
    assert metric(samples, "mayfly_prewarms_total", function=name) == \
        metric(after, "mayfly_prewarms_total", function=name)
    assert instances(srv, name, "starting", "idle", "busy") == 0
    # A clean stop (exit 0: no leak, no timer left behind).
    srv.stop()


def test_a_function_called_once_never_stays_warm_long(server):
    # Adaptive by the server's default: one call, no history, one bin (2 s)
    # of keep-alive, far under the fixed 600 s.
    srv = server("--keep-alive-bin-s", "2", "--idle-timeout", "600")
    name = unique("ka-once")
    deploy_py(srv, name, NOOP)
    rec = call(srv, name)
    assert rec["cold_start"] is True and rec["prewarmed"] is False, rec
    kw = keep_warm(srv, name)
    assert kw == {"policy": "adaptive", "keep_alive_s": 2.0, "prewarm_s": 0.0, "samples": 0,
                  "basis": "fallback", "setting": None}, kw
    wait_for("the instance of a function called once to stop",
             lambda: instances(srv, name, "starting", "idle", "busy", "stopping") == 0,
             timeout=120)
    samples = metrics(srv)
    assert metric(samples, "mayfly_prewarms_total", function=name) == 0
    # A fixed function beside it keeps its instance for the fixed timeout.
    fixed = unique("ka-fixed")
    deploy_py(srv, fixed, NOOP, keep_warm="fixed")
    call(srv, fixed)
    assert keep_warm(srv, fixed) == {"policy": "fixed", "keep_alive_s": 600.0, "prewarm_s": 0.0,
                                     "samples": 0, "basis": "fixed", "setting": "fixed"}
    time.sleep(6)  # three times the adaptive one's keep-alive
    assert instances(srv, fixed, "idle") == 1
    rec = call(srv, fixed)
    assert rec["cold_start"] is False and rec["prewarmed"] is False, rec


def test_keep_warm_is_validated_shown_and_kept_across_a_restart(server, tmp_path):
    srv = server()
    name = unique("ka-set")
    url = f"{srv.url}/v1/functions/{name}"
    for bad in ("sometimes", 5, True, {"policy": "adaptive"}, ""):
        r = requests.put(url, json=fn_body(keep_warm=bad), timeout=30)
        assert_error(r, 400, "bad_request", "keep_warm")
    r = requests.put(url, json=fn_body(keep_warm="adaptive"), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["keep_warm"]["policy"] == "adaptive"
    assert r.json()["keep_warm"]["setting"] == "adaptive"
    # The server's default is adaptive: without the field, adaptive, and
    # with no history one bin (a minute) of keep-alive.
    other = unique("ka-default")
    r = requests.put(f"{srv.url}/v1/functions/{other}", json=fn_body(), timeout=30)
    assert r.status_code == 201, r.text
    assert r.json()["keep_warm"] == {"policy": "adaptive", "keep_alive_s": 60.0,
                                     "prewarm_s": 0.0, "samples": 0, "basis": "fallback",
                                     "setting": None}
    # An update that leaves it out keeps it; a bad one changes nothing.
    r = requests.put(url, json={"memory_mb": 256}, timeout=30)
    assert r.status_code == 200 and r.json()["keep_warm"]["setting"] == "adaptive", r.text
    r = requests.put(url, json={"keep_warm": "never"}, timeout=30)
    assert_error(r, 400, "bad_request", "keep_warm")
    srv.restart()
    kw = keep_warm(srv, name)
    assert kw["policy"] == "adaptive" and kw["setting"] == "adaptive", kw
    # null goes back to the server's default.
    r = requests.put(url, json={"keep_warm": None}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["keep_warm"]["policy"] == "adaptive"
    assert r.json()["keep_warm"]["setting"] is None
    # The CLI sets it too, and the server's refusal names the field.
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.py").write_text(NOOP)
    p = srv.cli("deploy", name, app, "--keep-warm", "adaptive")
    assert p.returncode == 0, p.stderr
    assert keep_warm(srv, name)["setting"] == "adaptive"
    p = srv.cli("deploy", name, app, "--keep-warm", "default")
    assert p.returncode == 0, p.stderr
    assert keep_warm(srv, name)["setting"] is None
    p = srv.cli("deploy", name, app, "--keep-warm", "always")
    assert p.returncode != 0 and "keep_warm" in p.stderr, (p.returncode, p.stderr)


def test_the_server_wide_policy_and_the_longest_window_come_from_their_flags(server):
    # --keep-warm fixed makes functions without keep_warm fixed, at
    # --idle-timeout.
    srv = server("--keep-warm", "fixed", "--idle-timeout", "7")
    name = unique("ka-srv-fixed")
    deploy_py(srv, name, NOOP)
    assert keep_warm(srv, name) == {"policy": "fixed", "keep_alive_s": 7.0, "prewarm_s": 0.0,
                                    "samples": 0, "basis": "fixed", "setting": None}
    srv.stop()
    # --idle-timeout is the fixed policy's only: an adaptive window of one
    # 10 s bin outlives an idle timeout of 1 s, and the instance is still
    # warm after it...
    srv = server("--keep-alive-bin-s", "10", "--idle-timeout", "1")
    name = unique("ka-longer")
    deploy_py(srv, name, NOOP)
    assert keep_warm(srv, name)["keep_alive_s"] == 10.0
    rec = call(srv, name)
    assert rec["cold_start"] is True, rec
    time.sleep(3)
    rec = call(srv, name)
    assert rec["cold_start"] is False, rec
    srv.stop()
    # ...while --keep-alive-max-s bounds it.
    srv = server("--keep-alive-bin-s", "10", "--keep-alive-max-s", "4")
    name = unique("ka-bounded")
    deploy_py(srv, name, NOOP)
    assert keep_warm(srv, name)["keep_alive_s"] == 4.0
    call(srv, name)
    wait_for("the instance to stop after the longest window",
             lambda: instances(srv, name, "starting", "idle", "busy", "stopping") == 0,
             timeout=120)


@pytest.mark.parametrize("args,mention", [
    (["--keep-warm", "sometimes"], "--keep-warm"),
    (["--keep-alive-max-s", "0"], "--keep-alive-max-s"),
    (["--keep-alive-max-s", "864001"], "--keep-alive-max-s"),
    (["--keep-alive-bin-s", "0"], "--keep-alive-bin-s"),
    (["--keep-alive-bin-s", "3601"], "--keep-alive-bin-s"),
])
def test_bad_keep_alive_flags_exit_2_naming_them(tmp_path, args, mention):
    assert_server_refuses(tmp_path, args, mention)
