"""Response streaming (Lambda's RESPONSE_STREAM, docs/triggers.md) against
the real server: functions in Python, Node and C stream their answers
through the Runtime API's streaming mode; /v1 clients that ask for a stream
get the bytes as the function writes them, with the outcome in trailers;
Lambda's InvokeWithResponseStream answers in AWS's event-stream framing to
boto3 and the JavaScript SDK; a buffered caller gets the whole answer; a
stream is bounded; its record keeps its first bytes.

That the client has a chunk before the function writes the next is shown
without timing: after its first chunk the function waits for a key the
test sets in a key-value store only once it has read that chunk."""

import base64
import json
import os
import socket
import subprocess
import time
import zlib

import pytest
import requests

from conftest import (REPO, RawConn, build_c_bootstrap, deploy, deploy_py, get_record, invoke,
                      invoke_ok, unique, wait_for)

JS_DIR = REPO / "tests" / "e2e" / "js"
STREAM_ACCEPT = "application/vnd.mayfly.stream"


@pytest.fixture(scope="module")
def srv(module_server_factory):
    # A small stream bound, so that going past it is cheap to show.
    return module_server_factory("--max-stream-mb", "2")


def kv_put(srv, store, key, value):
    r = requests.put(f"{srv.url}/v1/kv/{store}/{key}", data=value, timeout=60)
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- a raw client


class Stream:
    """A POST …/invoke asking for a stream, read chunk by chunk off the
    socket: head, each chunk as it comes, then the trailers."""

    def __init__(self, srv, name, event, path=None, headers=None):
        port = int(srv.url.rsplit(":", 1)[1])
        self.conn = RawConn(port, timeout=120)
        body = json.dumps(event).encode()
        hdrs = {"Host": f"127.0.0.1:{port}", "Accept": STREAM_ACCEPT,
                "Content-Length": str(len(body))}
        hdrs.update(headers or {})
        head = f"POST {path or f'/v1/functions/{name}/invoke'} HTTP/1.1\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.conn.send(head.encode() + body)
        r = self.conn.read_response(head_only=True)
        self.status, self.headers = r.status_code, r.headers
        self.trailers = None

    def next_chunk(self):
        """The next chunk's bytes, or None at the end (trailers read)."""
        size = int(self.conn._read_line().split(b";")[0], 16)
        if size == 0:
            self.trailers = {}
            while True:
                line = self.conn._read_line()
                if not line:
                    return None
                name, _, value = line.decode("latin-1").partition(":")
                self.trailers[name.strip().lower()] = value.strip()
        data = self.conn._read_exact(size)
        assert self.conn._read_exact(2) == b"\r\n"
        return data

    def read_until(self, want):
        """Reads chunks until the bytes so far hold want; returns them."""
        got = b""
        while want not in got:
            chunk = self.next_chunk()
            assert chunk is not None, f"the stream ended before {want!r}: {got!r}"
            got += chunk
        return got

    def rest(self):
        got = b""
        while (chunk := self.next_chunk()) is not None:
            got += chunk
        return got

    def close(self):
        self.conn.close()


# ---------------------------------------------------------------- functions

PY_STREAMER = r'''
import time
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    stream.content_type = "text/plain"
    stream.write("chunk 0\n")
    gate = event.get("gate")
    if gate:
        # The test sets this key only once it has read chunk 0.
        store = mayfly.kv(gate["store"])
        while store.get(gate["key"]) is None:
            time.sleep(0.02)
    for i in range(1, 10):
        stream.write(f"chunk {i}\n")
    if event.get("fail"):
        raise ValueError("broke after ten chunks")
'''

NODE_STREAMER = r'''
const mayfly = require('mayfly');

exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  responseStream.write('chunk 0\n');
  if (event.gate) {
    const store = mayfly.kv(event.gate.store);
    while ((await store.get(event.gate.key)) === null) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  for (let i = 1; i < 10; i++) responseStream.write(`chunk ${i}\n`);
  if (event.fail) throw new TypeError('broke after ten chunks');
  responseStream.end();
});
'''

TEN_CHUNKS = b"".join(b"chunk %d\n" % i for i in range(10))


@pytest.fixture(scope="module")
def py_fn(srv):
    name = unique("pystream")
    deploy_py(srv, name, PY_STREAMER, permissions=["kv:*"])
    return name


@pytest.fixture(scope="module")
def node_fn(srv):
    name = unique("nodestream")
    deploy(srv, name, {"index.js": NODE_STREAMER}, runtime="nodejs", handler="index.handler",
           permissions=["kv:*"])
    return name


def gate_event(**extra):
    gate = {"store": unique("gate"), "key": "go"}
    return dict(gate=gate, **extra), gate


# ---------------------------------------------------------------- /v1


@pytest.mark.parametrize("which", ["py_fn", "node_fn"])
def test_the_first_chunk_arrives_before_the_function_writes_the_rest(srv, which, request):
    name = request.getfixturevalue(which)
    event, gate = gate_event()
    s = Stream(srv, name, event)
    try:
        assert s.status == 200
        assert s.headers["transfer-encoding"] == "chunked"
        assert s.headers["content-type"] == "text/plain"
        request_id = s.headers["x-mayfly-request-id"]
        # The function is blocked until the key exists: what we read now
        # was sent before the rest was written.
        first = s.read_until(b"chunk 0\n")
        assert first == b"chunk 0\n"
        kv_put(srv, gate["store"], gate["key"], b"1")
        rest = s.rest()
        assert first + rest == TEN_CHUNKS
        assert "x-mayfly-function-error" not in s.trailers
        assert float(s.trailers["x-mayfly-duration-ms"]) > 0
        assert int(s.trailers["x-mayfly-billed-ms"]) >= 1
    finally:
        s.close()
    rec = get_record(srv, request_id)
    assert rec["status"] == "success"
    assert rec["trigger"] == "invoke"


@pytest.mark.parametrize("which", ["py_fn", "node_fn"])
def test_an_error_in_the_middle_of_a_stream_reaches_the_trailers(srv, which, request):
    name = request.getfixturevalue(which)
    s = Stream(srv, name, {"fail": True})
    try:
        assert s.status == 200
        assert s.rest() == TEN_CHUNKS
        assert s.trailers["x-mayfly-function-error"] == "Unhandled"
        etype = "ValueError" if which == "py_fn" else "TypeError"
        assert s.trailers["x-mayfly-error-type"] == etype
        doc = json.loads(base64.b64decode(s.trailers["x-mayfly-error-body"]))
        assert doc["errorType"] == etype
        assert doc["errorMessage"] == "broke after ten chunks"
        request_id = s.headers["x-mayfly-request-id"]
    finally:
        s.close()
    rec = get_record(srv, request_id)
    assert rec["status"] == "error"
    assert rec["error_type"] == etype
    assert rec["error_message"] == "broke after ten chunks"


@pytest.mark.parametrize("which", ["py_fn", "node_fn"])
def test_a_buffered_caller_of_a_streaming_function_gets_the_whole_answer(srv, which, request):
    name = request.getfixturevalue(which)
    r = invoke_ok(srv, name, {})
    assert r.content == TEN_CHUNKS
    assert "Transfer-Encoding" not in r.headers
    # A failure in the middle is an ordinary function error to it.
    r = invoke(srv, name, {"fail": True})
    assert r.status_code == 200
    assert r.headers["X-Mayfly-Function-Error"] == "Unhandled"
    assert r.json()["errorMessage"] == "broke after ten chunks"


def test_asking_for_a_stream_of_a_function_that_does_not_stream_gets_its_answer(srv):
    name = unique("plain")
    deploy_py(srv, name, "def handler(event, context):\n    return {'n': event['n']}\n")
    r = requests.post(f"{srv.url}/v1/functions/{name}/invoke", json={"n": 3},
                      headers={"Accept": STREAM_ACCEPT}, timeout=60)
    assert r.status_code == 200
    assert r.json() == {"n": 3}
    assert r.headers["Content-Length"] == str(len(r.content))


def test_the_record_of_a_streamed_call_keeps_its_first_bytes(srv):
    name = unique("bigstream")
    src = r'''
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    for i in range(100):
        stream.write(b"%04d" % i + b"x" * 1020)
'''
    deploy_py(srv, name, src, record={"payloads": "full", "max_payload_kb": 4})
    s = Stream(srv, name, {})
    try:
        body = s.rest()
        request_id = s.headers["x-mayfly-request-id"]
    finally:
        s.close()
    assert len(body) == 100 * 1024
    rec = get_record(srv, request_id)
    assert rec["status"] == "success"
    assert rec["result_truncated"] is True
    assert rec["result_bytes"] == 100 * 1024
    r = requests.get(f"{srv.url}/v1/invocations/{request_id}/result", timeout=60)
    assert r.status_code == 200, r.text
    assert r.content == body[:4096]


def test_a_stream_past_its_bound_ends_with_an_error_and_the_next_call_works(srv):
    name = unique("huge")
    src = r'''
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    block = b"z" * 65536
    for _ in range(event["blocks"]):
        stream.write(block)
'''
    deploy_py(srv, name, src)
    # The server runs with --max-stream-mb 2: 3 MiB is past it.
    s = Stream(srv, name, {"blocks": 48})
    try:
        body = s.rest()
        request_id = s.headers["x-mayfly-request-id"]
    finally:
        s.close()
    assert 0 < len(body) <= 2 << 20
    assert s.trailers["x-mayfly-error-type"] == "Function.ResponseSizeTooLarge"
    rec = get_record(srv, request_id)
    assert rec["status"] == "error"
    assert rec["error_type"] == "Function.ResponseSizeTooLarge"
    # Under the bound it goes through whole.
    s = Stream(srv, name, {"blocks": 16})
    try:
        assert len(s.rest()) == 16 * 65536
        assert "x-mayfly-function-error" not in s.trailers
    finally:
        s.close()


# ---------------------------------------------------------------- InvokeWithResponseStream


def aws_env():
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": "dev", "AWS_SECRET_ACCESS_KEY": "dev",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"})
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        env.pop(k, None)
    return env


def js_stream_invoke(srv, name, payload, gate=None, log_type=None):
    node = "node"
    assert (JS_DIR / "node_modules" / "@aws-sdk" / "client-lambda").exists(), (
        "npm package @aws-sdk/client-lambda is missing: `make deps` installs it")
    env = aws_env()
    env.update({"MAYFLY_ENDPOINT": srv.url, "FUNCTION_NAME": name,
                "PAYLOAD": json.dumps(payload)})
    if gate:
        env["GATE_URL"] = f"{srv.url}/v1/kv/{gate['store']}/{gate['key']}"
    if log_type:
        env["LOG_TYPE"] = log_type
    p = subprocess.run([node, str(JS_DIR / "stream_invoke.mjs")], capture_output=True, text=True,
                       env=env, cwd=JS_DIR, timeout=180)
    assert p.returncode == 0, f"stream_invoke.mjs: exit {p.returncode}\n{p.stderr}\n{p.stdout}"
    report = json.loads(p.stdout)
    assert "ok" in report, report
    return report["ok"]


@pytest.mark.parametrize("which", ["py_fn", "node_fn"])
def test_invoke_with_response_stream_from_the_js_sdk(srv, which, request):
    name = request.getfixturevalue(which)
    event, gate = gate_event()
    out = js_stream_invoke(srv, name, event, gate=gate, log_type="Tail")
    assert out["status"] == 200
    assert out["executedVersion"] == "$LATEST"
    assert out["contentType"] == "application/vnd.amazon.eventstream"
    assert out["firstBeforeGate"] == "chunk 0\n"
    assert "".join(out["chunks"]).encode() == TEN_CHUNKS
    complete = out["complete"]
    assert complete is not None and not complete.get("ErrorCode"), complete
    log = base64.b64decode(complete["LogResult"]).decode()
    assert "REPORT RequestId:" in log, log


def test_invoke_with_response_stream_reports_a_mid_stream_error_in_invoke_complete(srv, node_fn):
    out = js_stream_invoke(srv, node_fn, {"fail": True})
    assert "".join(out["chunks"]).encode() == TEN_CHUNKS
    assert out["complete"]["ErrorCode"] == "TypeError", out
    assert out["complete"]["ErrorDetails"] == "broke after ten chunks", out


# Debian's botocore predates InvokeWithResponseStream (added to Lambda's API
# in 2023): its client gets the operation from AWS's model, added to the
# model it has. The parsing of the event stream is botocore's own.
IWRS_OPERATION = {
    "name": "InvokeWithResponseStream",
    "http": {"method": "POST", "responseCode": 200,
             "requestUri": "/2021-11-15/functions/{FunctionName}/response-streaming-invocations"},
    "input": {"shape": "InvokeWithResponseStreamRequest"},
    "output": {"shape": "InvokeWithResponseStreamResponse"},
    "errors": [{"shape": s} for s in ("ResourceNotFoundException", "InvalidParameterValueException",
                                      "TooManyRequestsException", "ServiceException",
                                      "RequestTooLargeException")],
}
IWRS_SHAPES = {
    "InvokeWithResponseStreamRequest": {
        "type": "structure", "required": ["FunctionName"], "payload": "Payload",
        "members": {
            "FunctionName": {"shape": "NamespacedFunctionName", "location": "uri",
                             "locationName": "FunctionName"},
            "InvocationType": {"shape": "ResponseStreamingInvocationType", "location": "header",
                               "locationName": "X-Amz-Invocation-Type"},
            "LogType": {"shape": "LogType", "location": "header", "locationName": "X-Amz-Log-Type"},
            "ClientContext": {"shape": "String", "location": "header",
                              "locationName": "X-Amz-Client-Context"},
            "Qualifier": {"shape": "Qualifier", "location": "querystring",
                          "locationName": "Qualifier"},
            "Payload": {"shape": "Blob"}}},
    "InvokeWithResponseStreamResponse": {
        "type": "structure", "payload": "EventStream",
        "members": {
            "StatusCode": {"shape": "Integer", "location": "statusCode"},
            "ExecutedVersion": {"shape": "Version", "location": "header",
                                "locationName": "X-Amz-Executed-Version"},
            "EventStream": {"shape": "InvokeWithResponseStreamResponseEvent"},
            "ResponseStreamContentType": {"shape": "String", "location": "header",
                                          "locationName": "Content-Type"}}},
    "InvokeWithResponseStreamResponseEvent": {
        "type": "structure", "eventstream": True,
        "members": {"PayloadChunk": {"shape": "InvokeResponseStreamUpdate"},
                    "InvokeComplete": {"shape": "InvokeWithResponseStreamCompleteEvent"}}},
    "InvokeResponseStreamUpdate": {
        "type": "structure", "event": True,
        "members": {"Payload": {"shape": "Blob", "eventpayload": True}}},
    "InvokeWithResponseStreamCompleteEvent": {
        "type": "structure", "event": True,
        "members": {"ErrorCode": {"shape": "String"}, "ErrorDetails": {"shape": "String"},
                    "LogResult": {"shape": "String"}}},
    "ResponseStreamingInvocationType": {"type": "string", "enum": ["RequestResponse", "DryRun"]},
}


def boto3_lambda(srv, tmp_path):
    import boto3
    import botocore.session
    from botocore.config import Config
    bs = botocore.session.Session()
    model = bs.get_component("data_loader").load_service_model("lambda", "service-2")
    if "InvokeWithResponseStream" not in model["operations"]:
        version = model["metadata"]["apiVersion"]
        model["operations"]["InvokeWithResponseStream"] = IWRS_OPERATION
        model["shapes"].update(IWRS_SHAPES)
        folder = tmp_path / "models" / "lambda" / version
        folder.mkdir(parents=True)
        (folder / "service-2.json").write_text(json.dumps(model))
        bs = botocore.session.Session()
        bs.set_config_variable("data_path", str(tmp_path / "models"))
    session = boto3.session.Session(aws_access_key_id="dev", aws_secret_access_key="dev",
                                    region_name="us-east-1", botocore_session=bs)
    return session.client("lambda", endpoint_url=srv.url,
                          config=Config(retries={"max_attempts": 1}, read_timeout=120))


def test_invoke_with_response_stream_from_boto3(srv, py_fn, tmp_path):
    lam = boto3_lambda(srv, tmp_path)
    event, gate = gate_event()
    res = lam.invoke_with_response_stream(FunctionName=py_fn, Payload=json.dumps(event))
    assert res["StatusCode"] == 200
    assert res["ExecutedVersion"] == "$LATEST"
    got, complete = b"", None
    for ev in res["EventStream"]:
        if "PayloadChunk" in ev:
            if not got:
                # The function waits for the gate: chunk 0 came first.
                assert ev["PayloadChunk"]["Payload"] == b"chunk 0\n"
                kv_put(srv, gate["store"], gate["key"], b"1")
            got += ev["PayloadChunk"]["Payload"]
        if "InvokeComplete" in ev:
            complete = ev["InvokeComplete"]
    assert got == TEN_CHUNKS
    assert complete is not None and "ErrorCode" not in complete, complete
    # A mid-stream error ends the stream in InvokeComplete.
    res = lam.invoke_with_response_stream(FunctionName=py_fn, Payload=b'{"fail": true}')
    events = list(res["EventStream"])
    assert b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e) == \
        TEN_CHUNKS
    assert events[-1]["InvokeComplete"]["ErrorCode"] == "ValueError", events[-1]
    assert events[-1]["InvokeComplete"]["ErrorDetails"] == "broke after ten chunks"


def test_invoke_with_response_stream_of_a_buffered_function_and_its_errors(srv, tmp_path):
    lam = boto3_lambda(srv, tmp_path)
    name = unique("plainrs")
    deploy_py(srv, name, "def handler(event, context):\n"
                         "    if event.get('fail'):\n        raise KeyError('nope')\n"
                         "    return {'n': event['n']}\n")
    res = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"n": 7}')
    events = list(res["EventStream"])
    assert [list(e) for e in events] == [["PayloadChunk"], ["InvokeComplete"]], events
    assert json.loads(events[0]["PayloadChunk"]["Payload"]) == {"n": 7}
    res = lam.invoke_with_response_stream(FunctionName=name, Payload=b'{"fail": true}')
    events = list(res["EventStream"])
    assert events[-1]["InvokeComplete"]["ErrorCode"] == "KeyError", events
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.invoke_with_response_stream(FunctionName=unique("missing"), Payload=b"{}")
    with pytest.raises(lam.exceptions.InvalidParameterValueException):
        lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}", LogType="Everything")


# ---------------------------------------------------------------- C, and the HTTP prelude

C_STREAMER = r'''
#include "mayfly_runtime.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char store[128], key[64], mode[16];
    int gated = mayfly_json_get_string(ev->body, ev->body_len, "store", store, sizeof store) > 0 &&
                mayfly_json_get_string(ev->body, ev->body_len, "key", key, sizeof key) > 0;
    if (mayfly_json_get_string(ev->body, ev->body_len, "mode", mode, sizeof mode) < 0)
        mode[0] = '\0';
    if (!strcmp(mode, "http")) {
        static const char *const headers[] = { "Content-Type", "text/csv", "X-From", "c",
                                               "Set-Cookie", "a=1", NULL };
        mayfly_stream_begin_http(res, 201, headers);
    } else {
        mayfly_stream_begin(res, "text/plain");
    }
    mayfly_stream_write(res, "chunk 0\n", 8);
    if (gated) {
        const char *v;
        size_t len;
        while (mayfly_kv_get(store, key, &v, &len, NULL) == -ENOENT)
            usleep(20000);
    }
    for (int i = 1; i < 10; i++) {
        char line[16];
        int n = snprintf(line, sizeof line, "chunk %d\n", i);
        if (mayfly_stream_write(res, line, (size_t)n) < 0)
            return 1;
    }
    if (!strcmp(mode, "fail"))
        return mayfly_response_error(res, "CError", "broke after ten chunks");
    return 0;
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
'''


@pytest.fixture(scope="module")
def c_fn(srv, tmp_path_factory):
    from conftest import executable
    bootstrap = build_c_bootstrap(C_STREAMER.replace('#include <unistd.h>',
                                                     '#include <errno.h>\n#include <unistd.h>'),
                                  tmp_path_factory.mktemp("c") / "bootstrap")
    name = unique("cstream")
    deploy(srv, name, {"bootstrap": executable(bootstrap.read_bytes())}, runtime="provided",
           handler=None, permissions=["kv:*"])
    return name


def test_a_c_function_streams_chunk_by_chunk_and_fails_in_the_trailers(srv, c_fn):
    gate = {"store": unique("gate"), "key": "go"}
    s = Stream(srv, c_fn, gate)
    try:
        assert s.headers["content-type"] == "text/plain"
        assert s.read_until(b"chunk 0\n") == b"chunk 0\n"
        kv_put(srv, gate["store"], gate["key"], b"1")
        assert s.rest() == b"".join(b"chunk %d\n" % i for i in range(1, 10))
        assert "x-mayfly-function-error" not in s.trailers
    finally:
        s.close()
    s = Stream(srv, c_fn, {"mode": "fail"})
    try:
        assert s.rest() == TEN_CHUNKS
        assert s.trailers["x-mayfly-error-type"] == "CError"
        doc = json.loads(base64.b64decode(s.trailers["x-mayfly-error-body"]))
        assert doc["errorMessage"] == "broke after ten chunks"
    finally:
        s.close()


def prelude_of(body):
    """Splits Lambda's HTTP-integration stream: the prelude JSON, the body."""
    head, sep, rest = body.partition(b"\0" * 8)
    assert sep, body[:200]
    return json.loads(head), rest


def test_the_http_integration_prelude_reaches_a_stream_client_as_the_runtime_sent_it(srv, c_fn,
                                                                                     node_fn):
    # C: mayfly_stream_begin_http.
    s = Stream(srv, c_fn, {"mode": "http"})
    try:
        assert s.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
        prelude, body = prelude_of(s.rest())
    finally:
        s.close()
    assert prelude == {"statusCode": 201, "headers": {"Content-Type": "text/csv", "X-From": "c"},
                       "cookies": ["a=1"]}
    assert body == TEN_CHUNKS
    # Node: awslambda.HttpResponseStream.from, as on Lambda.
    name = unique("nodehttp")
    deploy(srv, name, {"index.js": r'''
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 202, headers: { 'X-Kind': 'node' }, cookies: ['b=2'] });
  stream.write('hello ');
  stream.end('world');
});
'''}, runtime="nodejs", handler="index.handler")
    s = Stream(srv, name, {})
    try:
        assert s.headers["content-type"] == "application/vnd.awslambda.http-integration-response"
        prelude, body = prelude_of(s.rest())
    finally:
        s.close()
    assert prelude == {"statusCode": 202, "headers": {"X-Kind": "node"}, "cookies": ["b=2"]}
    assert body == b"hello world"
    # Python: mayfly.http_response.
    name = unique("pyhttp")
    deploy_py(srv, name, r'''
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    mayfly.http_response(stream, 404, {"X-Kind": "py"}, ["c=3"])
    stream.write(b"not here")
''')
    s = Stream(srv, name, {})
    try:
        prelude, body = prelude_of(s.rest())
    finally:
        s.close()
    assert prelude == {"statusCode": 404, "headers": {"X-Kind": "py"}, "cookies": ["c=3"]}
    assert body == b"not here"


# ---------------------------------------------------------------- flow control


def test_a_client_that_stops_reading_holds_the_function_not_the_server(server):
    """While the client reads nothing, the function's writes stop short of
    its stream: the server stops taking its bytes rather than holding
    them (the stream is far larger than every buffer on the way). The
    function counts what it has written in a KV key. The check cannot fail
    on a slow machine: with flow control the count can never reach the
    whole while nothing is read. Reading on lets everything through."""
    from conftest import rss_kib
    srv = server()  # the default bound, 200 MiB
    name = unique("slowclient")
    store = unique("progress")
    blocks = 1024  # 64 MiB
    deploy_py(srv, name, r'''
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    progress = mayfly.kv(event["store"])
    block = b"q" * 65536
    for i in range(event["blocks"]):
        stream.write(block)
        if i % 16 == 15:
            progress.put("written", i + 1)
''', permissions=["kv:*"], timeout_s=600)
    port = int(srv.url.rsplit(":", 1)[1])
    rss_before = rss_kib(srv)
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    body = json.dumps({"store": store, "blocks": blocks}).encode()
    sock.sendall(b"POST /v1/functions/%s/invoke HTTP/1.1\r\nHost: x\r\nAccept: %s\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (name.encode(), STREAM_ACCEPT.encode(),
                                                      len(body), body))

    def written():
        r = requests.get(f"{srv.url}/v1/kv/{store}/written", timeout=30)
        return int(r.text) if r.status_code == 200 else 0
    wait_for("the function to write its first blocks", lambda: written() >= 16, timeout=120)
    # Wait for the count to stand still (the function blocked), or for it
    # to reach the whole, which only a server holding the stream allows.
    last, still = -1, 0
    while still < 40:
        now = written()
        still = still + 1 if now == last else 0
        last = now
        if now >= blocks:
            break
        time.sleep(0.05)
    assert last < blocks, "the function wrote its whole stream while the client read nothing"
    assert rss_kib(srv) - rss_before < 32 * 1024, "the server holds the stream"
    got = 0
    tail = b""
    while data := sock.recv(1 << 20):
        got += len(data)
        tail = (tail + data)[-256:]
    sock.close()
    assert b"\r\n0\r\nX-Mayfly-Duration-Ms: " in tail, tail
    assert b"X-Mayfly-Function-Error" not in tail, tail
    assert got > blocks * 65536
    assert written() == blocks


def test_a_timeout_in_the_middle_of_a_stream_ends_it_with_the_error(srv):
    name = unique("slowstream")
    deploy_py(srv, name, r'''
import time
import mayfly

@mayfly.streaming
def handler(event, stream, context):
    stream.write("chunk 0\n")
    if event.get("hang"):
        time.sleep(3600)
''', timeout_s=20)
    # Warm first, so the call below has its 20 s for the stream itself.
    s = Stream(srv, name, {})
    try:
        assert s.rest() == b"chunk 0\n"
    finally:
        s.close()
    s = Stream(srv, name, {"hang": True})
    try:
        assert s.read_until(b"chunk 0\n") == b"chunk 0\n"
        assert s.rest() == b""
        assert s.trailers["x-mayfly-error-type"] == "Sandbox.Timedout"
        doc = json.loads(base64.b64decode(s.trailers["x-mayfly-error-body"]))
        assert doc["errorMessage"] == "Task timed out after 20.00 seconds"
        request_id = s.headers["x-mayfly-request-id"]
    finally:
        s.close()
    assert get_record(srv, request_id)["status"] == "timeout"
    # A new instance serves the next call.
    s = Stream(srv, name, {})
    try:
        assert s.rest() == b"chunk 0\n"
        assert "x-mayfly-function-error" not in s.trailers
    finally:
        s.close()


# ---------------------------------------------------------------- function URLs

NODE_URL_STREAMER = r'''
const mayfly = require('mayfly');

exports.handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  const body = JSON.parse(event.body || '{}');
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201,
    headers: {'Content-Type': 'text/plain', 'X-Path': event.rawPath},
    cookies: ['a=1', 'b=2'],
  });
  stream.write('chunk 0\n');
  if (body.gate) {
    const store = mayfly.kv(body.gate.store);
    while ((await store.get(body.gate.key)) === null) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  for (let i = 1; i < 10; i++) stream.write(`chunk ${i}\n`);
  if (body.fail) throw new TypeError('broke after ten chunks');
  stream.end();
});
'''


def put_url(srv, name, mode="RESPONSE_STREAM"):
    r = requests.put(f"{srv.url}/v1/functions/{name}/url",
                     json={"auth": "none", "invoke_mode": mode,
                           "cors": {"allow_origins": ["https://app.example"]}}, timeout=60)
    assert r.status_code in (200, 201), r.text


def test_a_response_stream_url_sends_the_prelude_then_the_bytes_as_written(srv):
    name = unique("urlstream")
    deploy(srv, name, {"index.js": NODE_URL_STREAMER}, runtime="nodejs",
           handler="index.handler", permissions=["kv:*"])
    put_url(srv, name)
    event, gate = gate_event()
    s = Stream(srv, name, event, path=f"/url/{name}/some/path",
               headers={"Origin": "https://app.example", "Content-Type": "application/json"})
    try:
        # The prelude's status, headers and cookies, and the URL's CORS.
        assert s.status == 201, s.headers
        assert s.headers["transfer-encoding"] == "chunked"
        assert s.headers["content-type"] == "text/plain"
        assert s.headers["x-path"] == "/some/path"
        assert s.headers["access-control-allow-origin"] == "https://app.example"
        request_id = s.headers["x-mayfly-request-id"]
        first = s.read_until(b"chunk 0\n")
        assert first == b"chunk 0\n", first
        kv_put(srv, gate["store"], gate["key"], b"1")
        assert first + s.rest() == TEN_CHUNKS
    finally:
        s.close()
    r = requests.post(f"{srv.url}/url/{name}/", json={}, timeout=60)
    assert r.status_code == 201 and r.text == TEN_CHUNKS.decode()
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    rec = get_record(srv, request_id)
    assert rec["trigger"] == "url" and rec["status"] == "success", rec


def test_a_response_stream_url_of_a_plain_stream_or_a_buffered_function(srv, py_fn):
    # A stream without a prelude: a 200 of its content type.
    put_url(srv, py_fn)
    r = requests.post(f"{srv.url}/url/{py_fn}/", json={}, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/plain"
    assert r.text == TEN_CHUNKS.decode()
    # A function answering in one piece is mapped as in BUFFERED mode.
    name = unique("urlplain")
    deploy_py(srv, name, "def handler(event, context):\n"
                         "    return {'statusCode': 202, 'headers': {'X-K': 'v'}, 'body': 'ok'}\n")
    put_url(srv, name)
    r = requests.post(f"{srv.url}/url/{name}/", data=b"x", timeout=60)
    assert r.status_code == 202 and r.headers["X-K"] == "v" and r.text == "ok"


def test_a_response_stream_url_failing_mid_stream_ends_it_with_the_error(srv):
    name = unique("urlfail")
    deploy(srv, name, {"index.js": NODE_URL_STREAMER}, runtime="nodejs",
           handler="index.handler", permissions=["kv:*"])
    put_url(srv, name)
    s = Stream(srv, name, {"fail": True}, path=f"/url/{name}/",
               headers={"Content-Type": "application/json"})
    try:
        assert s.status == 201
        assert s.rest() == TEN_CHUNKS
        assert s.trailers.get("x-mayfly-function-error") == "Unhandled", s.trailers
        request_id = s.headers["x-mayfly-request-id"]
    finally:
        s.close()
    rec = wait_for("the failed call's record",
                   lambda: (lambda r: r if r.get("status") == "error" else None)(
                       get_record(srv, request_id)), timeout=120)
    assert rec["trigger"] == "url", rec
