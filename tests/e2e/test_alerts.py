"""Alert rules (docs/alerts.md): PUT/GET/DELETE /v1/alerts, each metric
going pending, firing and resolved on a controlled load, one notification
per transition to a real HTTP receiver in the test (Alertmanager's webhook
document), retries while the receiver fails, delivery after a kill -9
between firing and sending, function and topic targets, and budgets'
thresholds through the same outbox.

Every server evaluates its rules every second (--alert-interval-s 1) and
retries notifications after 100 ms, 200 ms, … (--retry-base-ms 100)."""

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import assert_error, deploy_py, invoke, unique, wait_for

FAST = ("--alert-interval-s", "1", "--retry-base-ms", "100")

APP_PY = """
import time
def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("fail"):
        raise Exception("asked to fail")
    return {"ok": True}
"""

SINK_PY = """
import json
def handler(event, context):
    print("SINK " + json.dumps(event))
    return {"ok": True}
"""


class Receiver:
    """An Alertmanager webhook receiver: counts POSTs, keeps each body it
    answered 2xx, answers 500 to the first `fail` ones, and holds a request
    without answering while `hold` is set."""

    def __init__(self):
        self.fail = 0
        self.hold = False
        self.release = threading.Event()
        self.posts = 0
        self.held = 0
        self.delivered = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with outer.lock:
                    outer.posts += 1
                    if outer.hold:
                        outer.held += 1
                        hold = True
                    else:
                        hold = False
                        failing = outer.fail > 0
                        if failing:
                            outer.fail -= 1
                if hold:
                    outer.release.wait(120)
                    return  # closed without an answer
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.delivered.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def statuses(self):
        with self.lock:
            return [d["status"] for d in self.delivered]

    def close(self):
        self.release.set()
        self.httpd.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def put_rule(srv, name, headers=None, **body):
    return requests.put(f"{srv.url}/v1/alerts/{name}", json=body, headers=headers or {},
                        timeout=60)


def get_rule(srv, name, headers=None, **params):
    r = requests.get(f"{srv.url}/v1/alerts/{name}", params=params, headers=headers or {},
                     timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def notes_metric(srv, outcome, kind="webhook"):
    text = requests.get(f"{srv.url}/metrics", timeout=60).text
    for line in text.splitlines():
        if line.startswith("mayfly_alert_notifications_total{") and \
                f'target_kind="{kind}"' in line and f'outcome="{outcome}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def drive(srv, name, until, load):
    """Runs load() until the rule's state is until; returns the rule."""
    def step():
        load()
        doc = get_rule(srv, name)
        return doc if doc["state"] == until else None
    return wait_for(f"rule {name} {until}", step, timeout=120, interval=0.2)


def check_document(doc, status, rule, function=None):
    assert doc["version"] == "4"
    assert doc["status"] == status
    assert doc["receiver"] == "mayfly"
    assert doc["truncatedAlerts"] == 0
    assert doc["groupLabels"] == {"alertname": rule}
    assert doc["groupKey"] == '{}:{alertname="%s"}' % rule
    assert doc["externalURL"].startswith("http://127.0.0.1:")
    (alert,) = doc["alerts"]
    assert alert["status"] == status
    assert alert["labels"]["alertname"] == rule
    assert alert["labels"]["tenant"] == "default"
    if function:
        assert alert["labels"]["function"] == function
    assert doc["commonLabels"] == alert["labels"]
    assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    assert len(alert["fingerprint"]) == 16 and int(alert["fingerprint"], 16) >= 0
    assert alert["startsAt"].endswith("Z") and not alert["startsAt"].startswith("0001")
    if status == "firing":
        assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    else:
        assert alert["endsAt"] > alert["startsAt"]
    assert alert["generatorURL"].startswith(doc["externalURL"] + "/v1/alerts/" + rule)
    return alert


def test_error_rate_fires_and_resolves_with_one_webhook_per_transition(server, receiver):
    srv = server(*FAST)
    fn = unique("err")
    deploy_py(srv, fn, APP_PY)
    r = put_rule(srv, "errors", function=fn, metric="error_rate", op=">", threshold=0.5,
                 window_s=2, for_s=1, severity="critical", notify=[{"webhook": receiver.url}])
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "ok"
    drive(srv, "errors", "pending", lambda: invoke(srv, fn, {"fail": True}))
    doc = drive(srv, "errors", "firing", lambda: invoke(srv, fn, {"fail": True}))
    assert doc["value"] > 0.5
    wait_for("the firing notification", lambda: receiver.statuses() == ["firing"])
    firing = check_document(receiver.delivered[0], "firing", "errors", fn)
    assert firing["labels"]["severity"] == "critical"
    assert firing["labels"]["metric"] == "error_rate"
    doc = drive(srv, "errors", "resolved", lambda: invoke(srv, fn, {}))
    wait_for("the resolved notification", lambda: receiver.statuses() == ["firing", "resolved"])
    resolved = check_document(receiver.delivered[1], "resolved", "errors", fn)
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved["startsAt"] == firing["startsAt"]
    # The history says each transition, newest first, with its value.
    steps = [(h["from"], h["to"]) for h in doc["history"]]
    assert steps[:3] == [("firing", "resolved"), ("pending", "firing"), ("ok", "pending")]
    assert doc["history"][0]["function"] == fn
    # Once per transition: two delivered, nothing else sent.
    wait_for("two deliveries counted", lambda: notes_metric(srv, "delivered") == 2)
    assert receiver.posts == 2
    assert 'mayfly_alerts{state="resolved"} 1' in requests.get(f"{srv.url}/metrics",
                                                                timeout=60).text
    # State and history survive a restart; the same settings keep them.
    srv.restart()
    again = get_rule(srv, "errors")
    assert again["state"] == "resolved"
    assert [(h["from"], h["to"]) for h in again["history"]][:3] == steps[:3]
    r = put_rule(srv, "errors", function=fn, metric="error_rate", op=">", threshold=0.5,
                 window_s=2, for_s=1, severity="critical", notify=[{"webhook": receiver.url}])
    assert r.status_code == 200 and r.json()["state"] == "resolved", r.text
    # Other settings start it fresh.
    r = put_rule(srv, "errors", function=fn, metric="error_rate", op=">", threshold=0.9,
                 window_s=2, notify=[{"webhook": receiver.url}])
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "ok" and r.json()["history"] == []
    srv.restart()
    assert get_rule(srv, "errors")["history"] == []


def test_every_function_of_the_tenant_is_its_own_series(server, receiver):
    srv = server(*FAST)
    bad, good = unique("bad"), unique("good")
    deploy_py(srv, bad, APP_PY)
    deploy_py(srv, good, APP_PY)
    assert put_rule(srv, "each", function="*", metric="error_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201

    def load():
        invoke(srv, bad, {"fail": True})
        invoke(srv, good, {})
    doc = drive(srv, "each", "firing", load)
    series = {s["function"]: s for s in doc["series"]}
    assert series[bad]["state"] == "firing" and series[bad]["value"] == 1
    # Its own value: 0, or no data when its last call fell out of the window.
    assert series[good]["state"] == "ok" and series[good]["value"] in (0, None)
    assert doc["value"] is None  # several series: each says its own
    wait_for("the firing notification", lambda: receiver.statuses() == ["firing"])
    assert receiver.delivered[0]["alerts"][0]["labels"]["function"] == bad
    listed = requests.get(f"{srv.url}/v1/alerts", timeout=60).json()["alerts"]
    (each,) = [a for a in listed if a["name"] == "each"]
    assert {s["function"] for s in each["series"]} >= {bad, good}
    assert "history" not in each


def one_call(srv, fn, event):
    return lambda: invoke(srv, fn, event)


def test_each_windowed_metric_goes_pending_firing_resolved(server, receiver):
    """error_rate is above; here the others read from the calls' windows."""
    srv = server(*FAST)
    fn = unique("win")
    deploy_py(srv, fn, APP_PY, timeout_s=1)
    idle = lambda: None
    cases = [
        # (metric, op, threshold, window_s, breach load, heal load); the
        # invocations' window is long enough for 4 calls however slow the
        # machine is
        ("timeout_rate", ">", 0.5, 2, one_call(srv, fn, {"sleep": 3}), one_call(srv, fn, {})),
        ("p50_duration_ms", ">", 200, 2, one_call(srv, fn, {"sleep": 0.4}),
         one_call(srv, fn, {})),
        ("p99_duration_ms", ">", 200, 2, one_call(srv, fn, {"sleep": 0.4}),
         one_call(srv, fn, {})),
        ("invocations", ">", 3, 20, one_call(srv, fn, {}), idle),
        ("absent", None, None, 2, idle, one_call(srv, fn, {})),
    ]
    for metric, op, threshold, window_s, breach, heal in cases:
        name = metric.replace("_", "-")
        body = dict(function=fn, metric=metric, window_s=window_s, for_s=1,
                    notify=[{"webhook": receiver.url}])
        if op:
            body.update(op=op, threshold=threshold)
        before = len(receiver.delivered)
        assert put_rule(srv, name, **body).status_code == 201
        drive(srv, name, "pending", breach)
        drive(srv, name, "firing", breach)
        drive(srv, name, "resolved", heal)
        wait_for(f"{metric}'s two notifications",
                 lambda: len([d for d in receiver.delivered[before:]
                              if d["alerts"][0]["labels"]["alertname"] == name]) == 2)
        mine = [d for d in receiver.delivered if d["alerts"][0]["labels"]["alertname"] == name]
        assert [d["status"] for d in mine] == ["firing", "resolved"], metric
        assert mine[0]["alerts"][0]["labels"]["metric"] == metric
        assert requests.delete(f"{srv.url}/v1/alerts/{name}", timeout=60).status_code == 204


def test_cold_start_and_throttle_rates(server, receiver):
    srv = server(*FAST)
    fn = unique("cold")
    deploy_py(srv, fn, APP_PY)
    n = [0]

    def cold_call():  # a new version: the next call starts cold
        n[0] += 1
        deploy_py(srv, fn, APP_PY, env={"N": str(n[0])})
        invoke(srv, fn, {})

    assert put_rule(srv, "cold", function=fn, metric="cold_start_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    drive(srv, "cold", "firing", cold_call)
    drive(srv, "cold", "resolved", one_call(srv, fn, {}))
    assert put_rule(srv, "throttled", function=fn, metric="throttle_rate", op=">",
                    threshold=0.5, window_s=2, notify=[{"webhook": receiver.url}]
                    ).status_code == 201
    deploy_py(srv, fn, APP_PY, max_concurrency=0)
    assert invoke(srv, fn, {}).status_code == 429
    drive(srv, "throttled", "firing", one_call(srv, fn, {}))
    deploy_py(srv, fn, APP_PY, max_concurrency=10)
    drive(srv, "throttled", "resolved", one_call(srv, fn, {}))
    wait_for("four notifications", lambda: len(receiver.delivered) == 4)
    got = [(d["alerts"][0]["labels"]["alertname"], d["status"]) for d in receiver.delivered]
    assert got == [("cold", "firing"), ("cold", "resolved"), ("throttled", "firing"),
                   ("throttled", "resolved")]


def test_queue_metrics_and_dead_letters(server, receiver):
    srv = server(*FAST)
    fn = unique("q")
    deploy_py(srv, fn, APP_PY, max_concurrency=0, **{"async": {"max_retries": 0}})
    for metric, threshold in (("async_queue_depth", 0), ("async_oldest_age_s", 1)):
        assert put_rule(srv, metric.replace("_", "-"), function=fn, metric=metric, op=">",
                        threshold=threshold, window_s=2,
                        notify=[{"webhook": receiver.url}]).status_code == 201
    r = invoke(srv, fn, {"fail": True}, headers={"X-Mayfly-Invocation-Type": "Event"})
    assert r.status_code == 202, r.text
    drive(srv, "async-queue-depth", "firing", lambda: None)
    drive(srv, "async-oldest-age-s", "firing", lambda: None)
    assert put_rule(srv, "dead", function=fn, metric="dead_letters", op=">", threshold=0,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    # Let it run: it fails, once, and becomes a dead letter.
    deploy_py(srv, fn, APP_PY, max_concurrency=10, **{"async": {"max_retries": 0}})
    drive(srv, "async-queue-depth", "resolved", lambda: None)
    drive(srv, "async-oldest-age-s", "resolved", lambda: None)
    drive(srv, "dead", "firing", lambda: None)
    (dl,) = requests.get(f"{srv.url}/v1/functions/{fn}/dead-letters",
                         timeout=60).json()["dead_letters"]
    # Fixed, and the dead letter run again: it succeeds and is gone.
    deploy_py(srv, fn, "def handler(event, context):\n    return 1\n")
    r = requests.post(f"{srv.url}/v1/functions/{fn}/dead-letters/{dl['id']}/redrive", timeout=60)
    assert r.status_code == 202, r.text
    drive(srv, "dead", "resolved", lambda: None)
    wait_for("six notifications", lambda: len(receiver.delivered) == 6)
    for name in ("async-queue-depth", "async-oldest-age-s", "dead"):
        assert [d["status"] for d in receiver.delivered
                if d["alerts"][0]["labels"]["alertname"] == name] == ["firing", "resolved"]


def test_retries_until_the_receiver_answers(server, receiver):
    srv = server(*FAST)
    fn = unique("retry")
    deploy_py(srv, fn, APP_PY)
    receiver.fail = 3
    assert put_rule(srv, "r", function=fn, metric="error_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    drive(srv, "r", "firing", lambda: invoke(srv, fn, {"fail": True}))
    wait_for("the firing notification", lambda: receiver.statuses() == ["firing"])
    assert receiver.posts == 4  # three 500s, then the one that got through
    assert notes_metric(srv, "retried") == 3
    wait_for("the delivery counted", lambda: notes_metric(srv, "delivered") == 1)
    assert receiver.statuses() == ["firing"]


def test_delivered_after_kill_9_between_firing_and_sending(server, receiver):
    srv = server(*FAST)
    fn = unique("kill")
    deploy_py(srv, fn, APP_PY)
    receiver.hold = True
    assert put_rule(srv, "k", function=fn, metric="error_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    drive(srv, "k", "firing", lambda: invoke(srv, fn, {"fail": True}))
    wait_for("the notification on its way", lambda: receiver.held >= 1)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(60)
    receiver.hold = False
    receiver.release.set()
    assert receiver.delivered == []
    srv.start()
    wait_for("the firing notification after the restart",
             lambda: receiver.statuses() == ["firing"])
    check_document(receiver.delivered[0], "firing", "k", fn)
    assert get_rule(srv, "k")["state"] == "firing"


def sink_lines(srv, fn):
    r = requests.get(f"{srv.url}/v1/functions/{fn}/logs", timeout=60)
    assert r.status_code == 200, r.text
    return [json.loads(l)["message"] for l in r.text.splitlines() if "SINK" in l]


def published_document(event):
    """The Alertmanager document inside a topic delivery's event: the
    string somewhere in it that is one."""
    if isinstance(event, dict):
        values = event.values()
    elif isinstance(event, list):
        values = event
    else:
        values = []
    for v in values:
        if isinstance(v, str):
            try:
                doc = json.loads(v)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("version") == "4":
                return doc
        else:
            found = published_document(v)
            if found:
                return found
    return None


def test_function_and_topic_targets(server):
    srv = server(*FAST)
    fn, sink, via = unique("src"), unique("sink"), unique("via")
    deploy_py(srv, fn, APP_PY)
    deploy_py(srv, sink, SINK_PY)
    deploy_py(srv, via, SINK_PY)
    topic = unique("t")
    assert requests.put(f"{srv.url}/v1/topics/{topic}", timeout=60).status_code in (200, 201)
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions", json={"function": via},
                      timeout=60)
    assert r.status_code in (200, 201), r.text
    assert put_rule(srv, "fan", function=fn, metric="error_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"function": sink}, {"topic": topic}]).status_code == 201
    drive(srv, "fan", "firing", lambda: invoke(srv, fn, {"fail": True}))
    got = wait_for("the event", lambda: sink_lines(srv, sink))
    doc = json.loads(got[0].split("SINK ", 1)[1])
    assert doc["version"] == "4" and doc["status"] == "firing"
    assert doc["alerts"][0]["labels"]["alertname"] == "fan"
    got = wait_for("the publish", lambda: sink_lines(srv, via))
    # The subscriber's event carries the message (SNS's envelope): the
    # same document.
    doc = published_document(json.loads(got[0].split("SINK ", 1)[1]))
    assert doc["version"] == "4" and doc["status"] == "firing"
    assert doc["alerts"][0]["labels"]["alertname"] == "fan"
    assert notes_metric(srv, "delivered", "function") == 1
    assert notes_metric(srv, "delivered", "topic") == 1


def test_budget_thresholds_notify_through_the_outbox(server, receiver, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"currency": "EUR", "request_per_million": 1000000,
                                  "gb_second": 0}))
    srv = server(*FAST, "--prices", prices)
    fn = unique("spend")
    deploy_py(srv, fn, APP_PY)
    r = requests.put(f"{srv.url}/v1/budgets/cap", json={
        "tenant": "default", "function": fn, "period": "day", "amount": 4,
        "alert_at": [0.5], "notify": [{"webhook": receiver.url}]}, timeout=60)
    assert r.status_code == 201, r.text
    assert r.json()["notify"] == [{"webhook": receiver.url}]
    assert put_rule(srv, "used", budget="cap", metric="budget_used", op=">", threshold=0.7,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    for _ in range(2):
        invoke(srv, fn, {})
    wait_for("the budget's notification", lambda: len(receiver.delivered) >= 1)
    (doc,) = [d for d in receiver.delivered if d["alerts"][0]["labels"]["alertname"] == "budget"]
    labels = doc["alerts"][0]["labels"]
    assert (labels["budget"], labels["tenant"], labels["threshold"]) == ("cap", "default", "0.5")
    assert doc["version"] == "4" and doc["status"] == "firing"
    drive(srv, "used", "firing", lambda: invoke(srv, fn, {}))
    r = requests.put(f"{srv.url}/v1/budgets/cap", json={
        "tenant": "default", "function": fn, "period": "day", "amount": 1000}, timeout=60)
    assert r.status_code == 200, r.text
    drive(srv, "used", "resolved", lambda: None)
    wait_for("three notifications", lambda: len(receiver.delivered) == 3)
    used = [d["status"] for d in receiver.delivered
            if d["alerts"][0]["labels"]["alertname"] == "used"]
    assert used == ["firing", "resolved"]


@pytest.mark.parametrize("body,field", [
    ({"metric": "error_rate", "op": ">", "threshold": 0.1}, "function"),
    ({"function": "f", "op": ">", "threshold": 0.1}, "metric"),
    ({"function": "f", "metric": "errors", "op": ">", "threshold": 0.1}, "metric"),
    ({"function": "f", "metric": "error_rate", "op": ">=", "threshold": 0.1}, "op"),
    ({"function": "f", "metric": "error_rate", "threshold": 0.1}, "op"),
    ({"function": "f", "metric": "error_rate", "op": ">"}, "threshold"),
    ({"function": "f", "metric": "error_rate", "op": ">", "threshold": 2}, "threshold"),
    ({"function": "f", "metric": "error_rate", "op": ">", "threshold": "x"}, "threshold"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1, "window_s": 0},
     "window_s"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1, "for_s": -1},
     "for_s"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1,
      "notify": [{"webhook": "ftp://x"}]}, "notify[0].webhook"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1,
      "notify": [{"email": "a@b"}]}, "notify[0]"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1,
      "severity": "very bad"}, "severity"),
    ({"function": "a b", "metric": "invocations", "op": ">", "threshold": 1}, "function"),
    ({"metric": "budget_used", "op": ">", "threshold": 1}, "budget"),
    ({"function": "f", "metric": "absent", "op": "<", "threshold": 1}, "op"),
    ({"function": "f", "metric": "invocations", "op": ">", "threshold": 1, "colour": "red"},
     "colour"),
])
def test_bad_rules_are_refused_naming_the_field(shared_server, body, field):
    r = put_rule(shared_server, "bad", **body)
    assert_error(r, 400, "bad_request", field)


def test_unknown_rules(shared_server):
    r = requests.get(f"{shared_server.url}/v1/alerts/nope", timeout=60)
    assert_error(r, 404, "not_found")
    r = requests.delete(f"{shared_server.url}/v1/alerts/nope", timeout=60)
    assert r.status_code == 404, r.text
    r = requests.put(f"{shared_server.url}/v1/alerts/a.b", data=b"{}", timeout=60)
    assert_error(r, 400, "bad_request", "name")


KEYS = {
    "admin": ("AKIAAADMIN000000001", "admin-secret", "default", "admin"),
    "dev": ("AKIAADEV00000000001", "dev-secret", "default", "developer"),
    "other": ("AKIAAOTHER000000001", "other-secret", "team-b", "developer"),
}


def auth(role):
    key_id, secret, _, _ = KEYS[role]
    return {"Authorization": f"Bearer {key_id}:{secret}"}


def test_rules_are_their_tenants(server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("".join(" ".join(k) + "\n" for k in KEYS.values()))
    srv = server("--keys", keys, *FAST)
    rule = {"function": "*", "metric": "error_rate", "op": ">", "threshold": 0.5}
    r = put_rule(srv, "mine", headers=auth("other"), **rule)
    assert r.status_code == 201, r.text
    assert r.json()["tenant"] == "team-b"
    assert_error(put_rule(srv, "x", headers=auth("other"), tenant="default", **rule),
                 403, "forbidden")
    assert put_rule(srv, "ours", headers=auth("dev"), **rule).status_code == 201

    def names(role):
        r = requests.get(f"{srv.url}/v1/alerts", headers=auth(role), timeout=60)
        assert r.status_code == 200, r.text
        return [(a["tenant"], a["name"]) for a in r.json()["alerts"]]
    assert names("other") == [("team-b", "mine")]
    assert names("dev") == [("default", "ours")]
    assert names("admin") == [("default", "ours"), ("team-b", "mine")]
    r = requests.get(f"{srv.url}/v1/alerts/ours", headers=auth("other"), timeout=60)
    assert r.status_code == 404


def test_on_postgresql_a_rule_reaches_every_node_and_notifies_once(server, receiver, pg):
    from conftest import database
    db = database(pg, "mayfly_alerts")
    a = server("--store", db, *FAST, "--sandbox-pool", "0", "--zygotes", "0")
    b = server("--store", db, *FAST, "--sandbox-pool", "0", "--zygotes", "0")
    fn = unique("shared")
    deploy_py(a, fn, APP_PY)
    assert put_rule(a, "shared", function=fn, metric="error_rate", op=">", threshold=0.5,
                    window_s=2, notify=[{"webhook": receiver.url}]).status_code == 201
    wait_for("the rule on B", lambda: requests.get(f"{b.url}/v1/alerts/shared",
                                                   timeout=60).status_code == 200)
    wait_for(f"{fn} on B", lambda: invoke(b, fn, {}).status_code == 200)
    # B's calls fail: B's rule fires; its one notification is delivered by
    # one node, once.
    drive(b, "shared", "firing", lambda: invoke(b, fn, {"fail": True}))
    wait_for("the firing notification", lambda: receiver.statuses() == ["firing"])
    wait_for("the delivery counted",
             lambda: notes_metric(a, "delivered") + notes_metric(b, "delivered") == 1)
    assert receiver.posts == 1
    # Deleted on A, it is gone from B.
    assert requests.delete(f"{a.url}/v1/alerts/shared", timeout=60).status_code == 204
    wait_for("the rule gone from B", lambda: requests.get(f"{b.url}/v1/alerts/shared",
                                                          timeout=60).status_code == 404)


def test_the_cli(shared_server, tmp_path):
    srv = shared_server
    p = srv.cli("alert", "put", "cli-rule", "--function", "f", "--metric", "p99_duration_ms",
                "--op", ">", "--threshold", "500", "--window", "60", "--for", "30",
                "--severity", "critical", "--notify-webhook", "http://127.0.0.1:9/a",
                "--notify-function", "pager", "--notify-topic", "ops")
    assert p.returncode == 0, p.stderr
    assert "created alert rule cli-rule" in p.stdout
    p = srv.cli("alert", "get", "cli-rule")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert (doc["metric"], doc["op"], doc["threshold"], doc["window_s"], doc["for_s"],
            doc["severity"]) == ("p99_duration_ms", ">", 500, 60, 30, "critical")
    assert doc["notify"] == [{"webhook": "http://127.0.0.1:9/a"}, {"function": "pager"},
                             {"topic": "ops"}]
    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps({"function": "*", "metric": "absent", "window_s": 600}))
    p = srv.cli("alert", "put", "cli-file", "--file", str(rule))
    assert p.returncode == 0, p.stderr
    p = srv.cli("alert", "ls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["TENANT", "NAME", "WATCHES", "METRIC", "RULE", "STATE", "VALUE"]
    assert any(l.split()[:4] == ["default", "cli-rule", "f", "p99_duration_ms"] for l in lines)
    assert any(l.split()[:4] == ["default", "cli-file", "*", "absent"] for l in lines)
    # A bad rule is the server's 400 (exit 1); bad usage exits 2.
    p = srv.cli("alert", "put", "cli-bad", "--function", "f", "--metric", "error_rate",
                "--op", ">", "--threshold", "5")
    assert p.returncode == 1 and "threshold" in p.stderr
    p = srv.cli("alert", "put", "cli-bad", "--function", "f", "--op", "=")
    assert p.returncode == 2 and "--op" in p.stderr
    p = srv.cli("alert", "put", "cli-bad", "--file", str(rule), "--metric", "absent")
    assert p.returncode == 2
    p = srv.cli("alert", "--help")
    assert p.returncode == 0 and "mayfly alert put" in p.stdout
    for name in ("cli-rule", "cli-file"):
        p = srv.cli("alert", "rm", name)
        assert p.returncode == 0, p.stderr
    p = srv.cli("alert", "get", "cli-rule")
    assert p.returncode == 1 and "cli-rule" in p.stderr
