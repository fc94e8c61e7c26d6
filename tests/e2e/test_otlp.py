"""OpenTelemetry: with --otlp-endpoint every call exports a trace over
OTLP/HTTP (JSON) to a collector, here a small receiver in this file: a root
span with the FaaS conventions' attributes, the caller's traceparent as its
parent, children for the cold start, the function and each outbound
connection; the function sees the trace. With the collector down, calls go
on and the exporter counts what it dropped."""

import http.server
import json
import re
import subprocess
import threading

import pytest
import requests

from conftest import (MAYFLY_BIN, deploy_py, free_port, get_record, invoke, metrics, unique,
                      wait_for)


class Receiver:
    """An OTLP/HTTP collector: keeps every span posted to /v1/traces."""

    def __init__(self):
        spans = self.spans = []
        self.posts = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                doc = json.loads(body)
                outer = self

                for rs in doc["resourceSpans"]:
                    res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                    for ss in rs["scopeSpans"]:
                        for sp in ss["spans"]:
                            sp["resource"] = res
                            spans.append(sp)
                outer.send_response(200)
                outer.send_header("Content-Type", "application/json")
                outer.send_header("Content-Length", "2")
                outer.end_headers()
                outer.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.http.server_port
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def of_trace(self, trace_id):
        return [s for s in list(self.spans) if s["traceId"] == trace_id]

    def close(self):
        self.http.shutdown()


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


FN = r"""
import os, urllib.request
def handler(event, context):
    if event.get("port"):
        urllib.request.urlopen("http://127.0.0.1:%d/checkout" % event["port"], timeout=20).read()
    return {"env": os.environ.get("TRACEPARENT"), "ctx": context.traceparent,
            "xray": os.environ.get("_X_AMZN_TRACE_ID")}
"""


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        out[a["key"]] = (v.get("stringValue") if "stringValue" in v else
                         int(v["intValue"]) if "intValue" in v else
                         v.get("boolValue") if "boolValue" in v else v.get("doubleValue"))
    return out


@pytest.fixture(scope="module")
def env(module_server_factory):
    rx = Receiver()
    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    srv = module_server_factory("--otlp-endpoint", f"http://127.0.0.1:{rx.port}/v1/traces",
                                "--retry-base-ms", "200")
    yield srv, rx, up.server_port
    rx.close()
    up.shutdown()


def test_a_call_exports_its_trace_under_the_callers_parent(env):
    srv, rx, up_port = env
    name = unique("traced")
    deploy_py(srv, name, FN, egress=[f"127.0.0.1:{up_port}"], memory_mb=256)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    r = invoke(srv, name, {"port": up_port},
               headers={"traceparent": f"00-{trace}-{parent}-01"})
    assert r.status_code == 200, r.text
    rid = r.headers["X-Mayfly-Request-Id"]
    seen = r.json()
    spans = wait_for("the call's spans",
                     lambda: (lambda s: s if any(x["name"].startswith("GET") for x in s) else None)
                     (rx.of_trace(trace)), timeout=60)
    (root,) = [s for s in spans if s.get("parentSpanId") == parent]
    a = attrs(root)
    assert root["name"] == name and root["kind"] == 2
    assert a["faas.invocation_id"] == rid and a["faas.name"] == name
    assert a["faas.trigger"] == "http" and a["faas.coldstart"] is True
    assert a["faas.max_memory"] == 256 << 20 and a["faas.version"] == 1
    assert root["status"]["code"] == 1
    assert root["resource"]["service.name"] == {"stringValue": "mayfly"}
    children = {s["name"]: s for s in spans if s.get("parentSpanId") == root["spanId"]}
    assert {"function", "cold start: sandbox", "cold start: runtime init"} <= set(children)
    get = children["GET /checkout"]
    ga = attrs(get)
    assert get["kind"] == 3
    assert ga["server.port"] == up_port and ga["http.request.method"] == "GET"
    assert ga["url.path"] == "/checkout" and ga["http.response.status_code"] == 200
    assert int(root["startTimeUnixNano"]) <= int(get["startTimeUnixNano"]) <= int(
        root["endTimeUnixNano"])
    # The function saw the trace, as W3C and as X-Ray.
    assert seen["env"] == seen["ctx"] == f"00-{trace}-{root['spanId']}-01"
    assert seen["xray"] == (f"Root=1-{trace[:8]}-{trace[8:]};Parent={root['spanId']};Sampled=1")
    assert get_record(srv, rid)["status"] == "success"


def test_a_call_without_a_traceparent_and_an_async_one(env):
    srv, rx, _ = env
    name = unique("traced")
    deploy_py(srv, name, FN)
    r = invoke(srv, name, {})
    rid = r.headers["X-Mayfly-Request-Id"]
    # Its own trace, named after its request id; no parent.
    trace = rid.replace("-", "")
    spans = wait_for("the call's spans", lambda: rx.of_trace(trace), timeout=60)
    roots = [s for s in spans if not s.get("parentSpanId")]
    assert len(roots) == 1 and attrs(roots[0])["faas.invocation_id"] == rid
    q = invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": "Event"})
    qid = q.headers["X-Mayfly-Request-Id"]
    # An async event: its own span from acceptance to outcome (a consumer
    # span, the trace's root here), and its attempt under it.
    spans = wait_for("the event's spans",
                     lambda: (lambda s: s if len(s) >= 3 else None)
                     (rx.of_trace(qid.replace("-", ""))), timeout=60)
    (event,) = [s for s in spans if not s.get("parentSpanId")]
    ea = attrs(event)
    assert event["name"] == f"{name} event" and event["kind"] == 5
    assert ea["faas.invocation_id"] == qid and ea["mayfly.outcome"] == "Success"
    assert ea["mayfly.attempts"] == 1 and event["status"]["code"] == 1
    (attempt,) = [s for s in spans if s.get("parentSpanId") == event["spanId"]]
    aa = attrs(attempt)
    assert attempt["name"] == f"{name} attempt 1" and attempt["kind"] == 1
    assert aa["faas.trigger"] == "other" and aa["mayfly.attempt"] == 1
    assert aa["faas.invocation_id"] == qid
    assert int(event["startTimeUnixNano"]) <= int(attempt["startTimeUnixNano"])
    assert int(attempt["endTimeUnixNano"]) <= int(event["endTimeUnixNano"])
    assert {"function"} <= {s["name"] for s in spans
                            if s.get("parentSpanId") == attempt["spanId"]}


FAILING = """
import os
def handler(event, context):
    raise RuntimeError("no luck " + os.environ.get("TRACEPARENT", "-"))
"""


def test_an_async_events_attempts_and_destination_are_under_the_callers_span(env):
    srv, rx, _ = env
    name, dest = unique("retried"), unique("dest")
    deploy_py(srv, dest, FN)
    deploy_py(srv, name, FAILING, **{"async": {"max_retries": 1, "on_failure": dest}})
    trace, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    q = invoke(srv, name, {}, headers={"X-Mayfly-Invocation-Type": "Event",
                                       "traceparent": f"00-{trace}-{parent}-01"})
    assert q.status_code == 202, q.text
    qid = q.headers["X-Mayfly-Request-Id"]

    def settled():
        s = rx.of_trace(trace)
        names = [x["name"] for x in s]
        return s if f"{name} event" in names and f"{dest} event" in names else None

    spans = wait_for("the event's and its destination's spans", settled, timeout=120)
    (event,) = [s for s in spans if s["name"] == f"{name} event"]
    assert event.get("parentSpanId") == parent
    ea = attrs(event)
    assert ea["faas.invocation_id"] == qid and ea["mayfly.outcome"] == "RetriesExhausted"
    assert ea["mayfly.attempts"] == 2 and ea["error.type"] == "RuntimeError"
    assert event["status"]["code"] == 2
    attempts = sorted((s for s in spans if s.get("parentSpanId") == event["spanId"]
                       and s["kind"] == 1), key=lambda s: attrs(s)["mayfly.attempt"])
    assert [s["name"] for s in attempts] == [f"{name} attempt 1", f"{name} attempt 2"]
    assert all(s["status"]["code"] == 2 for s in attempts)
    # The destination's event is a child of the failed event's span.
    (devent,) = [s for s in spans if s["name"] == f"{dest} event"]
    assert devent.get("parentSpanId") == event["spanId"]
    assert attrs(devent)["mayfly.outcome"] == "Success"
    # The last attempt's function saw its own span as its parent (its
    # error message carries its TRACEPARENT).
    rec = get_record(srv, qid)
    assert f"00-{trace}-{attempts[-1]['spanId']}-01" in rec["error_message"], rec

    # Redriven, its dead letter is a new event under the dead one's span.
    dls = requests.get(f"{srv.url}/v1/functions/{name}/dead-letters", timeout=30).json()
    (dl,) = [d for d in dls["dead_letters"] if d["request_id"] == qid]
    r = requests.post(f"{srv.url}/v1/functions/{name}/dead-letters/{dl['id']}/redrive",
                      timeout=30)
    assert r.status_code == 202, r.text
    rid = r.json()["request_id"]

    def redriven():
        for sp in rx.of_trace(trace):
            if sp["name"] == f"{name} event" and attrs(sp)["faas.invocation_id"] == rid:
                return sp
        return None

    again = wait_for("the redriven event's span", redriven, timeout=120)
    assert again.get("parentSpanId") == event["spanId"]


def test_lambda_invoke_takes_the_x_ray_header_boto3_sends_from_inside_a_function(env,
                                                                                 monkeypatch):
    """botocore adds X-Amzn-Trace-Id from _X_AMZN_TRACE_ID when it runs in
    a Lambda function (AWS_LAMBDA_FUNCTION_NAME set): a function calling
    another through the Lambda API continues its trace."""
    import boto3
    from botocore.config import Config
    srv, rx, _ = env
    name = unique("xray")
    deploy_py(srv, name, FN)
    trace, parent = "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "caller")
    monkeypatch.setenv("_X_AMZN_TRACE_ID",
                       f"Root=1-{trace[:8]}-{trace[8:]};Parent={parent};Sampled=1")
    lam = boto3.session.Session(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="x",
                                region_name="us-east-1").client(
        "lambda", endpoint_url=srv.url, config=Config(retries={"max_attempts": 1}))
    out = lam.invoke(FunctionName=name, Payload=b"{}")
    seen = json.loads(out["Payload"].read())
    lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")

    def both():
        s = rx.of_trace(trace)
        return s if any(x["name"] == f"{name} event" for x in s) and any(
            x["name"] == name for x in s) else None

    spans = wait_for("the calls' spans", both, timeout=60)
    (call,) = [s for s in spans if s["name"] == name]
    (event,) = [s for s in spans if s["name"] == f"{name} event"]
    assert call.get("parentSpanId") == parent and event.get("parentSpanId") == parent
    assert seen["env"] == f"00-{trace}-{call['spanId']}-01"


def test_with_the_collector_down_calls_go_on_and_drops_are_counted(server):
    dead = free_port()
    srv = server("--otlp-endpoint", f"http://127.0.0.1:{dead}/v1/traces")
    name = unique("untraced")
    deploy_py(srv, name, FN)
    for _ in range(5):
        assert invoke(srv, name, {}).status_code == 200
    wait_for("dropped spans to be counted",
             lambda: metrics(srv).get(("mayfly_otlp_spans_total",
                                       frozenset({("outcome", "dropped")})), 0) > 0, timeout=60)


@pytest.mark.parametrize("url", ["https://collector:4318/v1/traces", "collector:4318",
                                 "http://", "ftp://x/y"])
def test_a_bad_endpoint_refuses_to_start(tmp_path, url):
    p = subprocess.run([MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}", "--data",
                        str(tmp_path / "data"), "--otlp-endpoint", url], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 2 and "--otlp-endpoint" in p.stderr, p
