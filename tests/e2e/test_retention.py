"""Retention: records (with their payloads) and log lines are kept for
--retention-days and within --records-max-mb, oldest going first, pruned in
small batches while the server goes on answering, with the space given back
to the file system: the data directory stays bounded under a steady load."""

import concurrent.futures
import os
import sqlite3
import time

import pytest
import requests

from conftest import deploy_py, get_logs, get_record, invoke, metrics, unique, wait_for

LOGGER = r"""
import sys, time
LINE = "x" * 1023
def handler(event, context):
    # 64 KiB of log lines a call, and a 1 KiB payload each way: a steady
    # load of a few MB a second from 4 callers.
    for _ in range(64):
        print(LINE)
    time.sleep(0.05)
    return {"n": event["n"], "pad": "p" * 1000}
"""


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        if "/code" in root:
            continue
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass
    return total


def pruned(srv, kind):
    return metrics(srv).get(("mayfly_records_pruned_total", frozenset({("kind", kind)})), 0)


def test_the_data_directory_stays_bounded_under_a_steady_load(server):
    cap_mb = 20
    srv = server("--records-max-mb", cap_mb)
    name = unique("soak")
    deploy_py(srv, name, LOGGER, max_concurrency=8)
    first = invoke(srv, name, {"n": 0})
    assert first.status_code == 200
    first_id = first.headers["X-Mayfly-Request-Id"]
    get_record(srv, first_id)
    # 1,600 calls: 100 MiB of log lines and 3 MiB of payloads, five times
    # the cap, with a health check between batches.
    largest = 0
    statuses = []
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for batch in range(16):
            statuses += list(pool.map(lambda i: invoke(srv, name, {"n": i}).status_code,
                                      range(batch * 100, batch * 100 + 100)))
            assert requests.get(f"{srv.url}/healthz", timeout=30).status_code == 200
            largest = max(largest, dir_bytes(srv.data_dir))
    assert statuses.count(200) == len(statuses)
    # The pruner caught up: the oldest are gone, the size is near the cap.
    wait_for("pruning to bring the store under its cap",
             lambda: dir_bytes(srv.data_dir) < 2 * cap_mb << 20 and pruned(srv, "log_lines") > 0,
             timeout=120)
    assert requests.get(f"{srv.url}/v1/invocations/{first_id}", timeout=30).status_code == 404
    assert largest < 3 * cap_mb << 20, f"the data directory reached {largest >> 20} MiB"
    kept = metrics(srv)[("mayfly_records_bytes", frozenset())]
    assert 0 < kept <= cap_mb << 20
    # The latest calls are kept.
    last = invoke(srv, name, {"n": -1})
    assert get_record(srv, last.headers["X-Mayfly-Request-Id"])["result"]["n"] == -1


def test_records_and_logs_older_than_the_retention_go(server):
    srv = server()
    name = unique("old")
    deploy_py(srv, name, "def handler(event, context):\n    print('line', event['n'])\n"
                         "    return event\n")
    ids = [invoke(srv, name, {"n": i}).headers["X-Mayfly-Request-Id"] for i in range(6)]
    for rid in ids:
        get_record(srv, rid)
    srv.stop()
    # Three of them, and their log lines, made ten days old.
    db = sqlite3.connect(os.path.join(srv.data_dir, "mayfly.db"))
    old_ms = int(time.time() * 1000) - 10 * 86400000
    with db:
        for rid in ids[:3]:
            db.execute("UPDATE invocations SET start_ms = ? WHERE request_id = ?", (old_ms, rid))
            db.execute("UPDATE logs SET time_ms = ? WHERE request_id = ?", (old_ms, rid))
    db.close()
    srv.start()
    wait_for("the old records to go",
             lambda: requests.get(f"{srv.url}/v1/invocations/{ids[0]}", timeout=30)
             .status_code == 404, timeout=60)
    for rid in ids[:3]:
        assert requests.get(f"{srv.url}/v1/invocations/{rid}", timeout=30).status_code == 404
    for rid in ids[3:]:
        assert get_record(srv, rid)["status"] == "success"
    seen = {line["request_id"] for line in get_logs(srv, name)}
    assert not seen & set(ids[:3]) and set(ids[3:]) <= seen
    assert pruned(srv, "records") == 3


@pytest.mark.parametrize("flag,value,mention", [
    ("--retention-days", "0", "--retention-days must be a number from 1 to 3650"),
    ("--retention-days", "week", "--retention-days must be a number from 1 to 3650"),
    ("--records-max-mb", "15", "--records-max-mb must be a number from 16 to 1048576"),
    ("--records-max-mb", "", "--records-max-mb must be a number"),
    ("--dead-letter-days", "0", "--dead-letter-days must be a number from 1 to 3650"),
])
def test_bad_retention_flags_refuse_to_start(tmp_path, flag, value, mention):
    import subprocess
    from conftest import MAYFLY_BIN, free_port
    p = subprocess.run([MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}", "--data",
                        str(tmp_path / "data"), flag, value], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and mention in p.stderr, p


FAILING = "def handler(event, context):\n    raise RuntimeError('no ' + str(event['n']))\n"


def test_dead_letters_and_attempt_histories_past_their_days_go(server):
    srv = server()
    name = unique("dl")
    deploy_py(srv, name, FAILING, **{"async": {"max_retries": 0}})
    ids = []
    for n in range(4):
        r = invoke(srv, name, {"n": n}, headers={"X-Mayfly-Invocation-Type": "Event"})
        assert r.status_code == 202
        ids.append(r.headers["X-Mayfly-Request-Id"])
    dl_url = f"{srv.url}/v1/functions/{name}/dead-letters"
    wait_for("four dead letters",
             lambda: len(requests.get(dl_url, timeout=30).json()["dead_letters"]) == 4)
    for rid in ids:
        assert get_record(srv, rid)["attempt_history"]
    srv.stop()
    # Two of them, with their attempts, made twenty days old.
    db = sqlite3.connect(os.path.join(srv.data_dir, "queue.db"))
    old_ms = int(time.time() * 1000) - 20 * 86400000
    with db:
        for rid in ids[:2]:
            db.execute("UPDATE dead_letters SET time_ms = ? WHERE request_id = ?", (old_ms, rid))
            db.execute("UPDATE attempts SET start_ms = ? WHERE request_id = ?", (old_ms, rid))
    db.close()
    srv.start()
    wait_for("the old dead letters to go",
             lambda: len(requests.get(dl_url, timeout=30).json()["dead_letters"]) == 2)
    left = {d["request_id"] for d in requests.get(dl_url, timeout=30).json()["dead_letters"]}
    assert left == set(ids[2:])
    m = metrics(srv)
    assert m[("mayfly_dead_letters", frozenset({("function", name)}))] == 2
    assert m[("mayfly_async_pruned_total", frozenset({("kind", "dead_letters")}))] == 2
    assert m[("mayfly_async_pruned_total", frozenset({("kind", "attempts")}))] == 2
    assert "attempt_history" not in get_record(srv, ids[0])
    assert get_record(srv, ids[3])["attempt_history"]
