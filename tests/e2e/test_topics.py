"""Topics (docs/triggers.md): a published message fans out to every
subscribed function whose filter policy its attributes pass, as SNS's
Lambda event, each delivery an async event of its own that retries and
dead-letters by its function's settings; the 202 comes once the message and
every delivery are on disk, so kill -9 right after it loses nothing;
publishing from inside a function needs the permission topic:NAME; bad
input gets a 400 naming the problem and queues nothing; deleting a topic
or a function takes their subscriptions with them; the CLI does it all.

Most tests share one server whose retry base is 200 ms (--retry-base-ms)."""

import base64
import json
import re
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (RECORDER_PY, assert_error, assert_server_refuses, build_c_bootstrap,
                      dead_letters, deploy, deploy_py, executable, get_logs, get_record,
                      invoke_ok, metric, metrics, unique, wait_for)

RETRY_BASE_MS = 200
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

FAILING_PY = """
import json

def handler(event, context):
    print(json.dumps({"rid": context.aws_request_id, "event": event}))
    raise RuntimeError("this subscriber refuses every message")
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory("--retry-base-ms", RETRY_BASE_MS)


# ---------------------------------------------------------------- helpers


def put_topic(srv, name, expect=(201,)):
    r = requests.put(f"{srv.url}/v1/topics/{name}", timeout=30)
    assert r.status_code in expect, f"PUT topic {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def subscribe(srv, topic, function, filter=None, expect=(201,)):
    body = {"function": function}
    if filter is not None:
        body["filter"] = filter
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions", json=body, timeout=30)
    assert r.status_code in expect, f"subscribe {function}: HTTP {r.status_code} {r.text}"
    return r.json()


def publish(srv, topic, message, subject=None, attributes=None):
    body = {"message": message}
    if subject is not None:
        body["subject"] = subject
    if attributes is not None:
        body["attributes"] = attributes
    return requests.post(f"{srv.url}/v1/topics/{topic}/publish", json=body, timeout=30)


def published(r):
    """Asserts a 202 for a publish and returns its answer."""
    assert r.status_code == 202, f"publish: HTTP {r.status_code} {r.text}"
    doc = r.json()
    assert UUID.match(doc["message_id"]), doc
    for d in doc["deliveries"]:
        assert UUID.match(d["request_id"]) and UUID.match(d["subscription"]), doc
    return doc


def printed(srv, name):
    """What the function printed, one dict per run."""
    out = []
    for line in get_logs(srv, name):
        msg = line["message"]
        if msg.startswith("{"):
            out.append(json.loads(msg))
    return out


def wait_printed(srv, name, count, timeout=60.0):
    return wait_for(f"{count} run(s) of {name}",
                    lambda: (lambda p: p if len(p) >= count else None)(printed(srv, name)),
                    timeout)


def queue_of(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["async_queue"]


def subscriptions(srv, topic):
    r = requests.get(f"{srv.url}/v1/topics/{topic}/subscriptions", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["subscriptions"]


def slow_topic(srv, prefix, count, sleep_s, max_concurrency):
    """A new topic with count subscribers, recorders that sleep sleep_s a
    delivery; returns the topic and the subscribers' names."""
    topic = unique(prefix)
    subs = [unique(f"{prefix}{i}") for i in range(count)]
    slow = RECORDER_PY.replace("return {", f"__import__('time').sleep({sleep_s})\n    return {{")
    for name in subs:
        deploy_py(srv, name, slow, max_concurrency=max_concurrency)
    put_topic(srv, topic)
    for name in subs:
        subscribe(srv, topic, name)
    return topic, subs


def sns_of(event):
    """The Sns part of an SNS Lambda event, checking the envelope."""
    assert set(event) == {"Records"} and len(event["Records"]) == 1, event
    rec = event["Records"][0]
    assert rec["EventSource"] == "aws:sns" and rec["EventVersion"] == "1.0", rec
    return rec["Sns"]


# ---------------------------------------------------------------- fan-out


def test_fan_out_to_three_subscribers_and_a_filter_that_excludes_one(srv):
    topic = unique("orders")
    everything, orders, big = unique("all"), unique("orders"), unique("big")
    for name in (everything, orders, big):
        deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    s_all = subscribe(srv, topic, everything)
    s_orders = subscribe(srv, topic, orders, {"kind": ["order", {"prefix": "order-"}]})
    assert s_orders["function"] == orders
    s_big = subscribe(srv, topic, big, {"total": [{"numeric": [">", 100]}],
                                        "kind": [{"anything-but": "test"}]})
    assert s_all["filter"] is None
    assert s_big["filter"] == {"total": [{"numeric": [">", 100]}],
                               "kind": [{"anything-but": "test"}]}

    # All three: an order of 150.
    m1 = published(publish(srv, topic, "first", attributes={"kind": "order", "total": 150}))
    assert sorted(d["function"] for d in m1["deliveries"]) == sorted([everything, orders, big])
    by_fn = {d["function"]: d for d in m1["deliveries"]}
    assert by_fn[big]["subscription"] == s_big["id"]
    # An order of 50 leaves out the subscriber that wants more than 100.
    m2 = published(publish(srv, topic, "second", attributes={"kind": "order-return",
                                                             "total": 50}))
    assert sorted(d["function"] for d in m2["deliveries"]) == sorted([everything, orders])

    for name, count in ((everything, 2), (orders, 2), (big, 1)):
        runs = wait_printed(srv, name, count)
        got = sorted(sns_of(r["event"])["Message"] for r in runs)
        assert got == (["first", "second"] if count == 2 else ["first"]), (name, runs)
    for d in m1["deliveries"] + m2["deliveries"]:
        rec = get_record(srv, d["request_id"])
        assert rec["status"] == "success" and rec["function"] == d["function"], rec
        assert rec["trigger"] == f"topic:{topic}", rec
    # Nothing else is queued for the one left out.
    q = queue_of(srv, big)
    assert q["depth"] == 0 and q["running"] == 0, q
    assert len(printed(srv, big)) == 1


def test_the_event_is_snss_lambda_event(srv):
    topic, name = unique("shape"), unique("shape-sub")
    deploy_py(srv, name, RECORDER_PY)
    arn = put_topic(srv, topic)["arn"]
    assert arn == f"arn:aws:sns:us-east-1:000000000000:{topic}"
    sub = subscribe(srv, topic, name)
    assert sub["arn"] == f"{arn}:{sub['id']}"
    attrs = {"kind": "order", "total": 12.5, "tags": ["a", 2],
             "raw": {"Type": "Binary", "Value": base64.b64encode(b"\x00\x01").decode()},
             "sns_api": {"DataType": "Number", "StringValue": "3.015e2"}}
    doc = published(publish(srv, topic, '{"order": 1}', subject="New order", attributes=attrs))
    run = wait_printed(srv, name, 1)[0]
    assert run["rid"] == doc["deliveries"][0]["request_id"]
    rec = run["event"]["Records"][0]
    assert rec["EventSubscriptionArn"] == sub["arn"]
    sns = sns_of(run["event"])
    assert sns["Type"] == "Notification"
    assert sns["MessageId"] == doc["message_id"]
    assert sns["TopicArn"] == arn
    assert sns["Subject"] == "New order"
    assert sns["Message"] == '{"order": 1}'
    assert ISO_MS.match(sns["Timestamp"]), sns
    assert sns["SignatureVersion"] == "1"
    for k in ("Signature", "SigningCertUrl", "UnsubscribeUrl"):
        assert isinstance(sns[k], str), sns
    assert sns["MessageAttributes"] == {
        "kind": {"Type": "String", "Value": "order"},
        "total": {"Type": "Number", "Value": "12.5"},
        "tags": {"Type": "String.Array", "Value": '["a",2]'},
        "raw": {"Type": "Binary", "Value": "AAE="},
        "sns_api": {"Type": "Number", "Value": "3.015e2"},
    }
    # Without a subject, Subject is null, as SNS sends it to Lambda.
    published(publish(srv, topic, "plain"))
    runs = wait_printed(srv, name, 2)
    plain = [sns_of(r["event"]) for r in runs if sns_of(r["event"])["Message"] == "plain"][0]
    assert plain["Subject"] is None and plain["MessageAttributes"] == {}


def test_a_publish_with_no_matching_subscriber_is_still_accepted(srv):
    topic, name = unique("quiet"), unique("quiet-sub")
    deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    doc = published(publish(srv, topic, "to nobody"))
    assert doc["deliveries"] == []
    subscribe(srv, topic, name, {"kind": ["never"]})
    doc = published(publish(srv, topic, "filtered out", attributes={"kind": "other"}))
    assert doc["deliveries"] == []
    samples = metrics(srv)
    assert metric(samples, "mayfly_topic_messages_total", topic=topic) == 2
    assert metric(samples, "mayfly_topic_deliveries_total", topic=topic) == 0


def test_one_subscriber_fails_into_its_dead_letters_while_the_others_succeed(srv):
    topic = unique("mixed")
    ok1, ok2, bad = unique("ok1"), unique("ok2"), unique("bad")
    deploy_py(srv, ok1, RECORDER_PY)
    deploy_py(srv, ok2, RECORDER_PY)
    deploy_py(srv, bad, FAILING_PY, **{"async": {"max_retries": 1}})
    put_topic(srv, topic)
    for name in (ok1, ok2, bad):
        subscribe(srv, topic, name)
    doc = published(publish(srv, topic, "payment", attributes={"kind": "payment"}))
    by_fn = {d["function"]: d["request_id"] for d in doc["deliveries"]}
    assert set(by_fn) == {ok1, ok2, bad}

    dead = wait_for(f"a dead letter of {bad}", lambda: dead_letters(srv, bad))
    assert len(dead) == 1 and dead[0]["request_id"] == by_fn[bad], dead
    assert dead[0]["attempts"] == 2 and dead[0]["condition"] == "RetriesExhausted", dead
    assert dead[0]["error_type"] == "RuntimeError", dead
    event = json.loads(base64.b64decode(dead[0]["event_base64"]))
    assert sns_of(event)["MessageId"] == doc["message_id"]
    # The first attempt and its one retry, and no more.
    assert len(wait_printed(srv, bad, 2)) == 2
    for name in (ok1, ok2):
        rec = get_record(srv, by_fn[name])
        assert rec["status"] == "success" and rec["attempts"] == 1, rec
        assert len(printed(srv, name)) == 1
        assert dead_letters(srv, name) == []


# ---------------------------------------------------------------- from inside


PUBLISHER_PY = """
import mayfly

def handler(event, context):
    try:
        mid = mayfly.publish(event["topic"], {"from": context.aws_request_id},
                             subject="inside", attributes={"kind": "inside", "n": 7})
        return {"message_id": mid, "me": context.aws_request_id}
    except mayfly.Forbidden as e:
        return {"forbidden": e.message, "status": e.status}
"""

PUBLISHER_JS = """
const mayfly = require('mayfly');
exports.handler = async (event, context) => {
  const id = await mayfly.publish(event.topic, 'from node',
                                  { attributes: { kind: 'node' } });
  return { message_id: id, me: context.awsRequestId };
};
"""

PUBLISHER_C = r"""
#include <stdio.h>
#include <string.h>
#include "mayfly_runtime.h"

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char topic[80];
    if (mayfly_json_get_string(ev->body, ev->body_len, "topic", topic, sizeof topic) < 0)
        return mayfly_response_error(res, "BadEvent", "no topic");
    const char *id = NULL;
    int rc = mayfly_publish(topic, "from c", 6, "c subject", "{\"kind\": \"c\"}", &id);
    if (rc < 0)
        return mayfly_response_error(res, "PublishFailed", "%d %s", rc, mayfly_api_error());
    mayfly_response_printf(res, "{\"message_id\":\"%s\"}", id);
    return 0;
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
"""


def test_publish_from_inside_a_function_with_and_without_the_permission(srv):
    topic, sub = unique("inside"), unique("inside-sub")
    allowed, denied = unique("pub-ok"), unique("pub-no")
    deploy_py(srv, sub, RECORDER_PY)
    put_topic(srv, topic)
    subscribe(srv, topic, sub, {"kind": ["inside"], "n": [{"numeric": [">=", 7]}]})
    # A wildcard grants it, as kv's permissions do.
    deploy_py(srv, allowed, PUBLISHER_PY, permissions=[f"topic:{topic[:6]}*"])
    deploy_py(srv, denied, PUBLISHER_PY, permissions=["topic:someone-else"])

    out = invoke_ok(srv, allowed, {"topic": topic}).json()
    assert UUID.match(out["message_id"]), out
    run = wait_printed(srv, sub, 1)[0]
    sns = sns_of(run["event"])
    assert sns["MessageId"] == out["message_id"]
    assert json.loads(sns["Message"]) == {"from": out["me"]}
    assert sns["Subject"] == "inside"
    # The delivery is a call of its own, linked to the call that published.
    rec = get_record(srv, run["rid"])
    assert rec["caller_request_id"] == out["me"], rec

    out = invoke_ok(srv, denied, {"topic": topic}).json()
    assert out["status"] == 403, out
    assert f"topic:{topic}" in out["forbidden"], out
    assert len(printed(srv, sub)) == 1


def test_publish_helpers_of_node_and_c(srv, tmp_path):
    topic, sub = unique("helpers"), unique("helpers-sub")
    node, c = unique("pub-node"), unique("pub-c")
    deploy_py(srv, sub, RECORDER_PY)
    put_topic(srv, topic)
    subscribe(srv, topic, sub)
    deploy(srv, node, {"index.js": PUBLISHER_JS}, runtime="nodejs", handler="index.handler",
           permissions=[f"topic:{topic}"])
    boot = build_c_bootstrap(PUBLISHER_C, tmp_path / "bootstrap")
    deploy(srv, c, {"bootstrap": executable(boot.read_bytes())}, runtime="provided",
           handler=None, permissions=[f"topic:{topic}"])
    ids = {invoke_ok(srv, node, {"topic": topic}).json()["message_id"],
           invoke_ok(srv, c, {"topic": topic}).json()["message_id"]}
    runs = wait_printed(srv, sub, 2)
    got = {sns_of(r["event"])["MessageId"]: sns_of(r["event"]) for r in runs}
    assert set(got) == ids
    messages = {s["Message"]: s for s in got.values()}
    assert messages["from node"]["MessageAttributes"] == {"kind": {"Type": "String",
                                                                   "Value": "node"}}
    assert messages["from c"]["Subject"] == "c subject"
    assert messages["from c"]["MessageAttributes"] == {"kind": {"Type": "String", "Value": "c"}}


# ---------------------------------------------------------------- kill -9


def test_kill_9_right_after_the_202s_loses_no_delivery(server):
    srv = server("--retry-base-ms", RETRY_BASE_MS)
    # One at a time and slow, so that most deliveries are still queued when
    # the server dies (the test holds either way: every 202 must be kept).
    topic, subs = slow_topic(srv, "durable", 3, 0.2, max_concurrency=1)

    def one(i):
        return published(publish(srv, topic, f"m{i}"))

    count = 30
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(one, range(count)))
    # Every 202 is in hand: kill -9 at once.
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait(30)
    srv.kill()
    srv.start()
    taken = re.search(r"took up (\d+) queued events", srv.stderr())
    print(f"\nqueued deliveries taken up after kill -9: {taken.group(1) if taken else 0} "
          f"of {count * 3}")

    expected = {d["request_id"]: d["function"] for doc in docs for d in doc["deliveries"]}
    assert len(expected) == count * 3
    for rid, fn in expected.items():
        rec = get_record(srv, rid, timeout=300)
        assert rec["status"] == "success" and rec["function"] == fn, rec
    # Each subscriber saw every message (at least once).
    for name in subs:
        seen = {sns_of(r["event"])["Message"] for r in printed(srv, name)}
        assert seen == {f"m{i}" for i in range(count)}, (name, sorted(seen))


def flood_of_publishes(srv, subscribers, messages):
    """A topic of that many slow subscribers (0.3 s a delivery) and that
    many messages published to it from 4 threads, each 202'd; returns the
    subscribers and the delivery ids."""
    topic, subs = slow_topic(srv, "flood", subscribers, 0.3, max_concurrency=8)
    with ThreadPoolExecutor(4) as pool:
        docs = list(pool.map(lambda i: published(publish(srv, topic, f"m{i}")), range(messages)))
    return subs, [d["request_id"] for doc in docs for d in doc["deliveries"]]


def foreground_waits(srv, subs):
    m = metrics(srv)
    return sum(metric(m, "mayfly_async_foreground_waits_total", function=n) for n in subs)


def test_while_publishes_come_in_their_deliveries_take_turns_at_a_few_attempts(server):
    """Accepting goes first (docs/async.md): while events are being
    accepted and the loop is busy (here at any demand, --accept-first 0),
    all functions together run 2 attempts and the rest wait in line. One
    publish to 16 subscribers is 16 accepts at once, so the first two
    deliveries hold every attempt and the next ones wait; once the
    publishes stop, everything runs and nothing is lost."""
    srv = server("--accept-first", "0")
    subs, rids = flood_of_publishes(srv, 16, 5)
    assert len(rids) == 80
    for rid in rids:
        assert get_record(srv, rid, timeout=300)["status"] == "success"
    assert foreground_waits(srv, subs) > 0
    for name in subs:
        assert len(printed(srv, name)) == 5, name
        assert queue_of(srv, name)["depth"] == 0


def test_accept_first_off_never_holds_deliveries(server):
    srv = server("--accept-first", "off")
    subs, rids = flood_of_publishes(srv, 16, 5)
    for rid in rids:
        assert get_record(srv, rid, timeout=300)["status"] == "success"
    assert foreground_waits(srv, subs) == 0


@pytest.mark.parametrize("value", ["101", "-1", "x", "on"])
def test_bad_accept_first_flags_exit_2_naming_them(tmp_path, value):
    assert_server_refuses(tmp_path, ["--accept-first", value], "--accept-first")


# ---------------------------------------------------------------- lifecycle


def test_topics_list_get_delete_and_subscriptions_go_with_their_topic(srv):
    topic, name = unique("life"), unique("life-sub")
    deploy_py(srv, name, RECORDER_PY)
    created = put_topic(srv, topic)
    assert created["name"] == topic and created["subscription_count"] == 0
    assert ISO_MS.match(created["created"])
    again = put_topic(srv, topic, expect=(200,))
    assert again["created"] == created["created"]
    listed = requests.get(f"{srv.url}/v1/topics", timeout=10).json()["topics"]
    assert [t for t in listed if t["name"] == topic] == [created]
    names = [t["name"] for t in listed]
    assert names == sorted(names)

    sub = subscribe(srv, topic, name, {"a": ["b"]})
    # The same subscription again is that subscription; another filter is a conflict.
    assert subscribe(srv, topic, name, {"a": ["b"]}, expect=(200,))["id"] == sub["id"]
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions",
                      json={"function": name, "filter": {"a": ["c"]}}, timeout=10)
    assert_error(r, 409, "conflict", "another filter", sub["id"])
    got = requests.get(f"{srv.url}/v1/topics/{topic}", timeout=10).json()
    assert got["subscription_count"] == 1
    assert [s["id"] for s in got["subscriptions"]] == [sub["id"]]

    r = requests.delete(f"{srv.url}/v1/topics/{topic}", timeout=10)
    assert r.status_code == 204, r.text
    assert_error(requests.get(f"{srv.url}/v1/topics/{topic}", timeout=10), 404, "not_found",
                 topic)
    assert_error(publish(srv, topic, "x"), 404, "not_found", topic)
    # A topic made again under the name starts with no subscriptions.
    put_topic(srv, topic)
    assert subscriptions(srv, topic) == []


def test_unsubscribe_and_deleting_a_function_remove_subscriptions(srv):
    topic = unique("gone")
    a, b = unique("gone-a"), unique("gone-b")
    deploy_py(srv, a, RECORDER_PY)
    deploy_py(srv, b, RECORDER_PY)
    put_topic(srv, topic)
    sa, sb = subscribe(srv, topic, a), subscribe(srv, topic, b)
    r = requests.delete(f"{srv.url}/v1/topics/{topic}/subscriptions/{sa['id']}", timeout=10)
    assert r.status_code == 204, r.text
    assert_error(requests.delete(f"{srv.url}/v1/topics/{topic}/subscriptions/{sa['id']}",
                                 timeout=10), 404, "not_found", sa["id"])
    assert [s["id"] for s in subscriptions(srv, topic)] == [sb["id"]]
    # Deleting the function takes its subscriptions with it.
    assert requests.delete(f"{srv.url}/v1/functions/{b}", timeout=30).status_code == 204
    assert subscriptions(srv, topic) == []
    assert published(publish(srv, topic, "to no one"))["deliveries"] == []


def test_topics_and_subscriptions_survive_a_restart(server):
    srv = server()
    topic, name = unique("kept"), unique("kept-sub")
    deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    sub = subscribe(srv, topic, name, {"kind": ["yes"]})
    srv.restart()
    assert subscriptions(srv, topic) == [{k: sub[k] for k in ("id", "function", "filter",
                                                              "created", "tenant_id")}]
    doc = published(publish(srv, topic, "after", attributes={"kind": "yes"}))
    assert [d["subscription"] for d in doc["deliveries"]] == [sub["id"]]
    assert published(publish(srv, topic, "no", attributes={"kind": "no"}))["deliveries"] == []
    assert sns_of(wait_printed(srv, name, 1)[0]["event"])["Message"] == "after"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("body,status,code,mentions", [
    (b"not json", 400, "bad_request", ("not JSON",)),
    (b"[]", 400, "bad_request", ("JSON object",)),
    (b'{"subject":"s"}', 400, "bad_request", ("message",)),
    (b'{"message":{"a":1}}', 400, "bad_request", ("message", "string")),
    (b'{"message":""}', 400, "bad_request", ("message", "empty")),
    (b'{"message":"m","extra":1}', 400, "bad_request", ("unknown field `extra`",)),
    (b'{"message":"m","subject":7}', 400, "bad_request", ("subject",)),
    (b'{"message":"m","subject":"' + b"s" * 101 + b'"}', 400, "bad_request", ("subject", "100")),
    (b'{"message":"m","subject":"two\\nlines"}', 400, "bad_request", ("subject",
                                                                     "line breaks")),
    (b'{"message":"m","attributes":[]}', 400, "bad_request", ("attributes",)),
    (b'{"message":"m","attributes":{"a":{"Type":"Text","Value":"x"}}}', 400, "bad_request",
     ("attributes.a", "Type")),
    (b'{"message":"m","attributes":{"n":{"Type":"Number","Value":"ten"}}}', 400, "bad_request",
     ("attributes.n", "number")),
    (b'{"message":"m","attributes":{"AWS.x":"v"}}', 400, "bad_request", ("attributes.AWS.x",)),
    (json.dumps({"message": "m", "attributes": {f"a{i}": "v" for i in range(11)}}).encode(),
     400, "bad_request", ("11 attributes", "10")),
    (json.dumps({"message": "x" * (256 * 1024 + 1)}).encode(), 413, "payload_too_large",
     ("262145", "262144")),
    (json.dumps({"message": "x" * (256 * 1024 - 2), "attributes": {"k": "v"}}).encode(), 413,
     "payload_too_large", ("subject and attributes",)),
])
def test_bad_publishes_are_refused_and_queue_nothing(srv, body, status, code, mentions):
    topic, name = unique("bad"), unique("bad-sub")
    deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    subscribe(srv, topic, name)
    r = requests.post(f"{srv.url}/v1/topics/{topic}/publish", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert_error(r, status, code, *mentions)
    # Nothing was queued: the next good message is the subscriber's first.
    doc = published(publish(srv, topic, "good"))
    runs = wait_printed(srv, name, 1)
    assert [sns_of(x["event"])["MessageId"] for x in runs] == [doc["message_id"]]
    assert queue_of(srv, name)["enqueued"] == 1


@pytest.mark.parametrize("filter,mentions", [
    ([], ("filter", "JSON object")),
    ({"a": "x"}, ("filter.a", "list")),
    ({"a": [True]}, ("filter.a[0]", "true, false and null")),
    ({"a": [{"suffix": "x"}]}, ("filter.a[0]", "unknown operator `suffix`")),
    ({"a": [{"numeric": ["<", 1, ">", 0]}]}, ("filter.a[0]", "lower bound")),
    ({f"k{i}": ["v"] for i in range(6)}, ("at most 5",)),
    ({"a": list(range(6)), "b": list(range(5)), "c": list(range(6))}, ("150 combinations",)),
])
def test_bad_filters_are_400_naming_the_problem(srv, filter, mentions):
    topic, name = unique("badf"), unique("badf-sub")
    deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    r = requests.post(f"{srv.url}/v1/topics/{topic}/subscriptions",
                      json={"function": name, "filter": filter}, timeout=10)
    assert_error(r, 400, "bad_request", *mentions)
    assert subscriptions(srv, topic) == []


def test_other_bad_requests(srv):
    topic, name = unique("other"), unique("other-sub")
    deploy_py(srv, name, RECORDER_PY)
    put_topic(srv, topic)
    url = f"{srv.url}/v1/topics"
    assert_error(requests.put(f"{url}/bad.name", timeout=10), 400, "bad_request", "topic",
                 "[A-Za-z0-9_-]")
    assert_error(requests.put(f"{url}/{'x' * 65}", timeout=10), 400, "bad_request", "topic")
    assert_error(requests.put(f"{url}/{unique('t')}", data=b'{"x":1}', timeout=10), 400,
                 "bad_request", "unknown field `x`")
    assert_error(requests.get(f"{url}/{unique('none')}", timeout=10), 404, "not_found",
                 "no topic")
    assert_error(requests.delete(f"{url}/{unique('none')}", timeout=10), 404, "not_found")
    assert_error(publish(srv, unique("none"), "m"), 404, "not_found", "no topic")
    subs = f"{url}/{topic}/subscriptions"
    assert_error(requests.post(subs, json={}, timeout=10), 400, "bad_request", "function")
    assert_error(requests.post(subs, json={"function": name, "filters": {}}, timeout=10), 400,
                 "bad_request", "unknown field `filters`")
    assert_error(requests.post(subs, json={"function": "no/such"}, timeout=10), 400,
                 "bad_request", "function")
    assert_error(requests.post(subs, json={"function": unique("nobody")}, timeout=10), 404,
                 "not_found")
    assert_error(requests.post(f"{url}/{unique('none')}/subscriptions",
                               json={"function": name}, timeout=10), 404, "not_found", "topic")
    assert_error(requests.delete(f"{subs}/not-an-id", timeout=10), 404, "not_found",
                 "not-an-id")
    assert subscriptions(srv, topic) == []


# ---------------------------------------------------------------- CLI


def test_cli_round_trip(srv):
    topic, name = unique("cli"), unique("cli-sub")
    deploy_py(srv, name, RECORDER_PY)
    r = srv.cli("topic", "create", topic)
    assert r.returncode == 0 and f"created topic {topic}" in r.stdout, r.stderr
    r = srv.cli("topic", "create", topic)
    assert r.returncode == 0 and "exists already" in r.stdout, r.stderr
    r = srv.cli("topic", "ls")
    assert r.returncode == 0 and r.stdout.startswith("NAME"), r.stderr
    assert any(line.split()[0] == topic for line in r.stdout.splitlines()[1:]), r.stdout
    r = srv.cli("topic", "subscribe", topic, name, "--filter",
                '{"total": [{"numeric": [">=", 10]}]}')
    assert r.returncode == 0, r.stderr
    sub_id = r.stdout.strip()
    assert UUID.match(sub_id), r.stdout
    r = srv.cli("topic", "subscriptions", topic)
    assert r.returncode == 0 and sub_id in r.stdout and name in r.stdout, r.stdout
    assert '"numeric"' in r.stdout
    r = srv.cli("topic", "subscriptions", topic, "--json")
    assert json.loads(r.stdout)["subscriptions"][0]["id"] == sub_id

    r = srv.cli("publish", topic, "too small", "--attribute", "total:Number=5")
    assert r.returncode == 0 and UUID.match(r.stdout.strip()), r.stderr
    r = srv.cli("publish", topic, "-", "--subject", "From the CLI", "--attribute",
                "total:Number=12", "--attribute", "kind=order", "--json",
                input="big enough")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [d["subscription"] for d in doc["deliveries"]] == [sub_id]
    sns = sns_of(wait_printed(srv, name, 1)[0]["event"])
    assert sns["Message"] == "big enough" and sns["Subject"] == "From the CLI"
    assert sns["MessageAttributes"] == {"total": {"Type": "Number", "Value": "12"},
                                        "kind": {"Type": "String", "Value": "order"}}

    # Usage errors exit 2; the server's refusals exit 1 with its message.
    r = srv.cli("topic", "subscribe", topic, name, "--filter", "{not json")
    assert r.returncode == 2 and "--filter is not a JSON object" in r.stderr, r.stderr
    r = srv.cli("publish", topic)
    assert r.returncode == 2 and "missing MESSAGE" in r.stderr, r.stderr
    r = srv.cli("publish", topic, "m", "--attribute", "novalue")
    assert r.returncode == 2 and "NAME[:TYPE]=VALUE" in r.stderr, r.stderr
    r = srv.cli("topic", "frobnicate")
    assert r.returncode == 2 and "unknown command" in r.stderr, r.stderr
    r = srv.cli("publish", unique("none"), "m")
    assert r.returncode == 1 and "no topic" in r.stderr, r.stderr
    r = srv.cli("publish", topic, "m", "--attribute", "n:Number=ten")
    assert r.returncode == 1 and "attributes.n" in r.stderr, r.stderr
    r = srv.cli("topic", "--help")
    assert r.returncode == 0 and "subscribe TOPIC FUNCTION" in r.stdout

    r = srv.cli("topic", "unsubscribe", topic, sub_id)
    assert r.returncode == 0 and sub_id in r.stdout, r.stderr
    assert subscriptions(srv, topic) == []
    r = srv.cli("topic", "rm", topic)
    assert r.returncode == 0 and f"deleted topic {topic}" in r.stdout, r.stderr
    r = srv.cli("topic", "rm", topic)
    assert r.returncode == 1 and "no topic" in r.stderr, r.stderr
