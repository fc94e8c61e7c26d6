"""All instances together stay within the sandboxes' memory budget
(--sandbox-memory-mb): a new instance starts only while the sum of the
running instances' memory fits; idle instances of other functions make
room; past the queue, calls throttle."""

import threading

import requests

from conftest import assert_error, deploy_py, invoke, invoke_ok, unique, wait_for

SLEEPS = ("import time\n"
          "def handler(event, context):\n"
          "    time.sleep(event.get('sleep', 0))\n"
          "    return 'slept'\n")


def concurrently(srv, name, events, timeout=120):
    out = [None] * len(events)

    def call(i):
        out[i] = invoke(srv, name, events[i], timeout=timeout)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return out


def test_instances_never_hold_more_memory_than_the_budget(server):
    srv = server("--sandbox-memory-mb", "512")
    name = unique("budget")
    deploy_py(srv, name, SLEEPS, memory_mb=256, max_concurrency=10, timeout_s=60)
    # Long calls, so that all four are in before the first two end.
    results = concurrently(srv, name, [{"sleep": 3}] * 4)
    assert all(r.status_code == 200 and r.json() == "slept" for r in results), \
        [r.text for r in results]
    # Two instances of 256 MB fit in 512: the other two calls waited for them.
    colds = sum(int(r.headers["X-Mayfly-Cold-Start"]) for r in results)
    assert colds == 2, [dict(r.headers) for r in results]
    text = requests.get(f"{srv.url}/metrics", timeout=10).text
    assert 'mayfly_instance_memory_bytes{kind="budget"} 536870912' in text, text


def test_idle_instances_of_another_function_make_room(server):
    srv = server("--sandbox-memory-mb", "512")
    a, b = unique("idle-a"), unique("big-b")
    deploy_py(srv, a, SLEEPS, memory_mb=256)
    deploy_py(srv, b, SLEEPS, memory_mb=512)
    concurrently(srv, a, [{"sleep": 0.5}] * 2)  # two idle instances of a: 512 MB
    r = invoke_ok(srv, b, {})
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    # a's instances were stopped for b: a starts cold again.
    wait_for("b's instance to be idle", lambda: invoke_ok(srv, b, {}).json() == "slept")
    assert invoke_ok(srv, a, {}).headers["X-Mayfly-Cold-Start"] == "1"


def test_past_the_queue_calls_throttle_when_memory_is_full(server):
    srv = server("--sandbox-memory-mb", "256", "--max-queue", "1")
    name = unique("budget-q")
    deploy_py(srv, name, SLEEPS, memory_mb=256, max_concurrency=10, timeout_s=60)
    # Long calls, so that all three are in before the first one ends.
    results = concurrently(srv, name, [{"sleep": 5}] * 3)
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 200, 429], [r.text for r in results]
    throttled = next(r for r in results if r.status_code == 429)
    assert throttled.headers.get("Retry-After")


def test_a_function_larger_than_the_budget_fails_with_a_clear_error(server):
    srv = server("--sandbox-memory-mb", "256")
    name = unique("too-big")
    deploy_py(srv, name, SLEEPS, memory_mb=512)
    r = invoke(srv, name, {})
    assert_error(r, 500, "internal", "512 MB", "--sandbox-memory-mb")
