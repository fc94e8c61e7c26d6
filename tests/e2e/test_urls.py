"""Function URLs: a function's own HTTP endpoint, as Lambda's function URLs.

A small JSON API written as a Python handler (GET with a query, POST with a
JSON body, a binary upload, cookies in and out, a redirect), the Node.js
handler of Lambda's function URL tutorial unmodified, the errors (502 on a
function error, a malformed answer and a timeout, 429 when throttled, 413
on a 7 MiB body), auth none and key (a bearer token, a SigV4 signature from
botocore's signer), CORS preflights answered without calling the function
and CORS headers on answers, --url-domain by Host, the settings through
/v1, the CLI and awscli's function URL commands, and bad settings (400)."""

import base64
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from conftest import b64, make_zip, unique, wait_for

REGION = "us-east-1"
KEY_ID = "AKIAMAYFLYURLTEST001"
SECRET = "url-test-secret-00000000000000000000001"
BEARER = {"Authorization": f"Bearer {KEY_ID}:{SECRET}"}
AWS_CLI = "/usr/bin/aws"
DOMAIN = "fn.test"

API_PY = r'''
import base64
import json
import time


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    path = event["rawPath"]
    if path == "/items" and method == "GET":
        return {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": json.dumps({"query": event.get("queryStringParameters", {}),
                                    "raw": event["rawQueryString"]})}
    if path == "/items" and method == "POST":
        item = json.loads(event["body"])
        return {"statusCode": 201,
                "headers": {"Content-Type": "application/json",
                            "Location": "/items/" + item["id"]},
                "body": json.dumps({"created": item})}
    if path == "/upload":
        data = base64.b64decode(event["body"]) if event["isBase64Encoded"] else b""
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": base64.b64encode(data[::-1]).decode(), "isBase64Encoded": True}
    if path == "/cookies":
        return {"statusCode": 200, "body": "cookies",
                "cookies": ["seen=" + "|".join(event.get("cookies", [])),
                            "session=s3cr3t; Path=/; HttpOnly"]}
    if path == "/old":
        return {"statusCode": 302, "headers": {"Location": "/new", "X-Reason": "moved"}}
    if path == "/multi":
        return {"statusCode": 200, "multiValueHeaders": {"X-Multi": ["one", "two"]},
                "headers": {"Access-Control-Allow-Origin": "https://evil.example"},
                "body": {"not": "a string"}}
    if path == "/plain":
        return "Hello, world!"
    if path == "/object":
        return {"message": "no statusCode"}
    if path == "/number":
        return 42
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/bad":
        return {"statusCode": "nope"}
    if path == "/crlf":
        return {"statusCode": 200, "headers": {"X-Split": "a\r\nInjected: yes"}}
    if path == "/sleep":
        time.sleep(600)
    return event
'''

# The handler of Lambda's tutorial "Creating a Lambda function with a
# function URL", as the tutorial gives it.
TUTORIAL_JS = '''exports.handler = async (event) => {
    let body = JSON.parse(event.body);
    const product = body.num1 * body.num2;
    const response = {
        statusCode: 200,
        body: "The product of " + body.num1 + " and " + body.num2 + " is " + product,
    };
    return response;
};
'''


# ---------------------------------------------------------------- helpers


def v1(srv, method, path, **kw):
    headers = dict(BEARER)
    headers.update(kw.pop("headers", {}))
    return requests.request(method, f"{srv.url}{path}", headers=headers, timeout=60, **kw)


def deploy(srv, name, files, runtime="python3", handler="app.handler", **settings):
    settings.setdefault("timeout_s", 60)
    body = {"runtime": runtime, "handler": handler,
            "code": {"zip_base64": b64(make_zip(files))}, **settings}
    r = v1(srv, "PUT", f"/v1/functions/{name}", json=body)
    assert r.status_code in (200, 201), f"deploying {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def set_url(srv, name, **settings):
    r = v1(srv, "PUT", f"/v1/functions/{name}/url", json=settings)
    assert r.status_code in (200, 201), f"PUT url of {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def url_of(srv, name, path="/"):
    return f"{srv.url}/url/{name}{path}"


def get(srv, name, path="/", **kw):
    kw.setdefault("timeout", 120)
    return requests.get(url_of(srv, name, path), **kw)


def records(srv, name):
    r = v1(srv, "GET", f"/v1/functions/{name}/invocations?limit=100")
    assert r.status_code == 200, r.text
    return r.json()["invocations"]


def assert_v1_error(resp, status, *mentions):
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    message = resp.json()["error"]["message"]
    for m in mentions:
        assert m.lower() in message.lower(), f"{message!r} does not mention {m!r}"
    return message


@pytest.fixture(scope="module")
def srv(module_server_factory):
    # Keys, so auth "key" means something; no queue, so a call that finds
    # the function's only instance busy is throttled at once.
    return module_server_factory("--url-domain", DOMAIN, "--max-queue", "0",
                                 env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{SECRET}"})


@pytest.fixture(scope="module")
def api(srv):
    """The JSON API function, with a public URL."""
    name = unique("api")
    deploy(srv, name, {"app.py": API_PY}, max_concurrency=1)
    set_url(srv, name, auth="none")
    return name


# ---------------------------------------------------------------- the JSON API


def test_get_with_a_query(srv, api):
    r = get(srv, api, "/items?tag=a&tag=b&q=hello%20world&plus=a+b&empty=")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"query": {"tag": "a,b", "q": "hello world", "plus": "a b", "empty": ""},
                        "raw": "tag=a&tag=b&q=hello%20world&plus=a+b&empty="}
    # The call's own id, as Lambda's x-amzn-RequestId.
    assert r.headers["X-Mayfly-Request-Id"] == r.headers["x-amzn-RequestId"]


def test_post_with_a_json_body(srv, api):
    r = requests.post(url_of(srv, api, "/items"), json={"id": "42", "name": "widget"},
                      timeout=120)
    assert r.status_code == 201, r.text
    assert r.headers["Location"] == "/items/42"
    assert r.json() == {"created": {"id": "42", "name": "widget"}}


def test_binary_upload_round_trip(srv, api):
    data = bytes(range(256)) * 64 + os.urandom(4096)
    r = requests.post(url_of(srv, api, "/upload"), data=data,
                      headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.content == data[::-1]


def test_cookies_in_and_out(srv, api):
    r = get(srv, api, "/cookies", headers={"Cookie": "a=1; b=two"})
    assert r.status_code == 200, r.text
    assert r.raw.headers.getlist("Set-Cookie") == ["seen=a=1|b=two",
                                                   "session=s3cr3t; Path=/; HttpOnly"]


def test_redirect_with_headers(srv, api):
    r = get(srv, api, "/old", allow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["Location"] == "/new"
    assert r.headers["X-Reason"] == "moved"


def test_the_event_is_payload_format_2(srv, api):
    r = requests.put(url_of(srv, api, "/some/where?x=1&y=%2F"), data="plain text",
                     headers={"Content-Type": "text/plain; charset=utf-8", "X-Rep": "1",
                              "User-Agent": "url-test/1", "Cookie": "k=v"},
                     timeout=120)
    assert r.status_code == 200, r.text
    ev = r.json()
    assert ev["version"] == "2.0" and ev["routeKey"] == "$default"
    assert ev["rawPath"] == "/some/where"
    assert ev["rawQueryString"] == "x=1&y=%2F"
    assert ev["queryStringParameters"] == {"x": "1", "y": "/"}
    assert ev["cookies"] == ["k=v"]
    assert "cookie" not in ev["headers"]
    assert ev["headers"]["x-rep"] == "1"
    assert ev["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert ev["body"] == "plain text" and ev["isBase64Encoded"] is False
    ctx = ev["requestContext"]
    assert ctx["http"] == {"method": "PUT", "path": "/some/where", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "url-test/1"}
    assert ctx["routeKey"] == "$default" and ctx["stage"] == "$default"
    assert ctx["accountId"] == "anonymous" and ctx["domainPrefix"] == api
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 24 * 3600  # a real epoch in ms
    # The call's own id, as the answer and the record say it.
    assert ctx["requestId"] == r.headers["X-Mayfly-Request-Id"]
    rec = wait_for("the call's record", lambda: (lambda g: g.json() if g.status_code == 200
                                                 else None)(
        requests.get(f"{srv.url}/v1/invocations/{ctx['requestId']}", headers=BEARER,
                     timeout=60)))
    assert rec["trigger"] == "url" and rec["function"] == api, rec
    # A body that is not text (no Content-Type says it is) is base64.
    r = requests.post(url_of(srv, api, "/"), data=b"\x00\xffbin", timeout=120)
    ev = r.json()
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == b"\x00\xffbin"


def test_repeated_headers_are_joined(srv, api):
    # requests folds repeats into one line itself: send the raw request.
    import socket
    body = b'{"a":1}'
    req = (f"POST /url/{api}/rep HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Rep: 1\r\nX-Rep: 2\r\n"
           f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
           "Connection: close\r\n\r\n").encode() + body
    with socket.create_connection(("127.0.0.1", srv.port), timeout=120) as s:
        s.sendall(req)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    ev = json.loads(payload)
    assert ev["headers"]["x-rep"] == "1,2"
    assert ev["body"] == '{"a":1}' and ev["isBase64Encoded"] is False


def test_results_without_status_code_are_json_bodies(srv, api):
    r = get(srv, api, "/plain")
    assert (r.status_code, r.headers["Content-Type"], r.text) == (
        200, "application/json", '"Hello, world!"')
    r = get(srv, api, "/object")
    assert r.status_code == 200 and r.json() == {"message": "no statusCode"}
    r = get(srv, api, "/number")
    assert r.status_code == 200 and r.text == "42"


def test_multi_value_headers_and_a_body_that_is_not_a_string(srv, api):
    r = get(srv, api, "/multi")
    assert r.status_code == 200, r.text
    assert r.raw.headers.getlist("X-Multi") == ["one", "two"]
    assert r.json() == {"not": "a string"}
    # Without CORS settings the function's own CORS headers pass.
    assert r.headers["Access-Control-Allow-Origin"] == "https://evil.example"


def test_lambda_tutorial_handler_unmodified(srv):
    name = unique("tutorial")
    deploy(srv, name, {"index.js": TUTORIAL_JS}, runtime="nodejs", handler="index.handler")
    set_url(srv, name, auth="none")
    r = requests.post(url_of(srv, name, "/"), json={"num1": "10", "num2": "10"}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.text == "The product of 10 and 10 is 100"


# ---------------------------------------------------------------- errors


def test_function_error_and_malformed_answers_are_502(srv, api):
    r = get(srv, api, "/boom")
    assert r.status_code == 502, r.text
    assert r.headers["X-Mayfly-Function-Error"] == "Unhandled"
    rec = v1(srv, "GET", f"/v1/invocations/{r.headers['X-Mayfly-Request-Id']}").json()
    assert rec["status"] == "error" and "boom" in rec["error_message"], rec
    for path in ("/bad", "/crlf"):
        r = get(srv, api, path)
        assert r.status_code == 502, (path, r.status_code, r.text)
        assert "Injected" not in r.headers
    # The function is fine after them.
    assert get(srv, api, "/plain").status_code == 200


def test_timeout_is_502_and_a_busy_function_throttles_with_429(srv):
    name = unique("sleepy")
    deploy(srv, name, {"app.py": API_PY}, max_concurrency=1, timeout_s=10)
    set_url(srv, name, auth="none")
    slow = {}

    def call_slow():
        slow["resp"] = get(srv, name, "/sleep", timeout=300)

    t = threading.Thread(target=call_slow)
    t.start()

    def busy():
        m = v1(srv, "GET", "/metrics").text
        return f'mayfly_instances{{function="{name}",state="busy"}} 1' in m
    wait_for("the slow call to run", busy, timeout=120)
    throttled = None
    while t.is_alive() and throttled is None:
        r = get(srv, name, "/plain")
        if r.status_code == 429:
            throttled = r
    t.join(300)
    assert throttled is not None, f"no 429 while the only instance was busy: {slow}"
    assert throttled.headers["Retry-After"] == "1"
    assert slow["resp"].status_code == 502, slow["resp"].text
    rec = v1(srv, "GET", f"/v1/invocations/{slow['resp'].headers['X-Mayfly-Request-Id']}").json()
    assert rec["status"] == "timeout", rec


def test_a_body_over_6_mib_is_413(srv, api):
    before = len(records(srv, api))
    r = requests.post(url_of(srv, api, "/upload"), data=b"x" * (7 << 20),
                      headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 413, r.text
    assert len(records(srv, api)) == before  # the function never ran
    r = requests.post(url_of(srv, api, "/upload"), data=b"y" * (1 << 20),
                      headers={"Content-Type": "application/octet-stream"}, timeout=120)
    assert r.status_code == 200 and r.content == b"y" * (1 << 20)


def test_unknown_urls_are_404(srv, api):
    name = unique("nourl")
    deploy(srv, name, {"app.py": API_PY})
    assert_v1_error(get(srv, name), 404, "has no URL")
    assert_v1_error(get(srv, unique("nosuch")), 404, "has no URL")


# ---------------------------------------------------------------- auth


def sigv4_headers(method, url, body=b"", secret=SECRET, headers=None):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    SigV4Auth(Credentials(KEY_ID, secret), "lambda", REGION).add_auth(req)
    return dict(req.headers)


def test_auth_key_takes_a_bearer_token_or_a_sigv4_signature(srv):
    name = unique("private")
    deploy(srv, name, {"app.py": API_PY})
    assert set_url(srv, name, auth="key")["auth"] == "key"
    target = url_of(srv, name, "/items?x=1")

    r = requests.get(target, timeout=120)
    assert r.status_code == 403, r.text
    assert "bearer" in r.json()["error"]["message"].lower()
    r = requests.get(target, headers={"Authorization": f"Bearer {KEY_ID}:wrong"}, timeout=120)
    assert r.status_code == 403, r.text

    r = requests.get(target, headers=BEARER, timeout=120)
    assert r.status_code == 200 and r.json()["query"] == {"x": "1"}, r.text

    body = json.dumps({"id": "7"}).encode()
    post = url_of(srv, name, "/items")
    h = sigv4_headers("POST", post, body, headers={"Content-Type": "application/json"})
    r = requests.post(post, data=body, headers=h, timeout=120)
    assert r.status_code == 201 and r.json() == {"created": {"id": "7"}}, r.text
    # The signer's key reaches the function as Lambda's IAM authorizer.
    h = sigv4_headers("GET", url_of(srv, name, "/who"))
    ev = requests.get(url_of(srv, name, "/who"), headers=h, timeout=120).json()
    assert ev["requestContext"]["authorizer"]["iam"]["accessKey"] == KEY_ID
    assert ev["requestContext"]["accountId"] != "anonymous"

    # A wrong secret, or a body changed after signing, is refused.
    h = sigv4_headers("POST", post, body, secret="not-the-secret")
    assert requests.post(post, data=body, headers=h, timeout=120).status_code == 403
    h = sigv4_headers("POST", post, body)
    r = requests.post(post, data=b'{"id": "8"}', headers=h, timeout=120)
    assert r.status_code == 403, r.text

    # auth none: public again.
    set_url(srv, name, auth="none")
    assert requests.get(target, timeout=120).status_code == 200


def test_auth_none_is_logged_as_public(srv, api):
    wait_for("the public URL's warning",
             lambda: f"the URL of function {api} is public" in srv.stderr())


# ---------------------------------------------------------------- CORS


CORS = {"allow_origins": ["https://app.example"], "allow_methods": ["GET", "POST"],
        "allow_headers": ["X-Custom", "Content-Type"], "expose_headers": ["X-Reason"],
        "max_age": 600, "allow_credentials": True}


def test_cors_preflight_is_answered_without_the_function(srv):
    name = unique("cors")
    deploy(srv, name, {"app.py": API_PY})
    set_url(srv, name, auth="key", cors=CORS)
    pre = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "x-custom"}
    # No credentials: a browser sends none on a preflight.
    r = requests.options(url_of(srv, name, "/items"), headers=pre, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Allow-Methods"] == "GET,POST"
    assert r.headers["Access-Control-Allow-Headers"] == "X-Custom,Content-Type"
    assert r.headers["Access-Control-Max-Age"] == "600"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    # An origin or a method the settings do not allow gets no CORS headers.
    r = requests.options(url_of(srv, name, "/items"), timeout=120,
                         headers={**pre, "Origin": "https://other.example"})
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers
    r = requests.options(url_of(srv, name, "/items"), timeout=120,
                         headers={**pre, "Access-Control-Request-Method": "DELETE"})
    assert "Access-Control-Allow-Origin" not in r.headers
    # The function never ran.
    assert records(srv, name) == []


def test_cors_headers_on_answers(srv):
    name = unique("corsans")
    deploy(srv, name, {"app.py": API_PY})
    set_url(srv, name, auth="none", cors=CORS)
    r = get(srv, name, "/old", allow_redirects=False, headers={"Origin": "https://app.example"})
    assert r.status_code == 302
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert r.headers["Access-Control-Expose-Headers"] == "X-Reason"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    # The settings' CORS replace the function's own.
    r = get(srv, name, "/multi", headers={"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    r = get(srv, name, "/multi", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    # OPTIONS that is not a preflight reaches the function.
    r = requests.options(url_of(srv, name, "/x"), timeout=120)
    assert r.status_code == 200 and r.json()["requestContext"]["http"]["method"] == "OPTIONS"


# ---------------------------------------------------------------- --url-domain


def test_url_domain_by_host(srv, api):
    host = f"{api}.{DOMAIN}:{srv.port}"
    r = requests.get(f"{srv.url}/items?via=host", headers={"Host": host}, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["query"] == {"via": "host"}
    # Every path of the host is the function's, the API's included.
    ev = requests.get(f"{srv.url}/v1/functions", headers={"Host": host}, timeout=120).json()
    assert ev["rawPath"] == "/v1/functions"
    assert ev["requestContext"]["domainName"] == f"{api}.{DOMAIN}"
    # The URL shown is the domain's.
    assert v1(srv, "GET", f"/v1/functions/{api}/url").json()["url"] == f"http://{api}.{DOMAIN}/"


# ---------------------------------------------------------------- settings


def test_settings_shown_and_removed(srv):
    name = unique("settings")
    deploy(srv, name, {"app.py": API_PY})
    r = v1(srv, "PUT", f"/v1/functions/{name}/url",
           json={"auth": "none", "cors": {"allow_origins": ["*"]},
                 "invoke_mode": "RESPONSE_STREAM"})
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["function"] == name and doc["auth"] == "none"
    assert doc["invoke_mode"] == "RESPONSE_STREAM"
    assert doc["cors"]["allow_origins"] == ["*"] and doc["cors"]["max_age"] == 0
    # A RESPONSE_STREAM URL answers (buffered, for now).
    assert get(srv, name, "/plain").text == '"Hello, world!"'
    r = v1(srv, "PUT", f"/v1/functions/{name}/url", json={})
    assert r.status_code == 200 and r.json()["auth"] == "key" and "cors" not in r.json()
    assert r.json()["created"] == doc["created"]
    assert v1(srv, "GET", f"/v1/functions/{name}/url").json()["auth"] == "key"
    assert v1(srv, "DELETE", f"/v1/functions/{name}/url").status_code == 204
    assert_v1_error(v1(srv, "GET", f"/v1/functions/{name}/url"), 404, "has no URL")
    assert_v1_error(v1(srv, "DELETE", f"/v1/functions/{name}/url"), 404, "has no URL")
    assert_v1_error(get(srv, name), 404, "has no URL")
    # Settings need credentials like the rest of /v1.
    r = requests.put(f"{srv.url}/v1/functions/{name}/url", json={"auth": "none"}, timeout=60)
    assert r.status_code == 401


def test_the_functions_document_says_whether_it_has_a_url(srv):
    # A client (the console) learns it from the function, without a 404.
    name = unique("has-url")
    assert deploy(srv, name, {"app.py": API_PY})["url"] is None

    def shown():
        one = v1(srv, "GET", f"/v1/functions/{name}").json()["url"]
        listed = [f for f in v1(srv, "GET", "/v1/functions").json()["functions"]
                  if f["name"] == name]
        assert listed and listed[0]["url"] == one
        return one

    assert shown() is None
    url = set_url(srv, name, auth="key")["url"]
    assert url == f"http://{name}.{DOMAIN}/"
    assert shown() == url
    # Updating the function keeps its URL, and the answer says so.
    assert deploy(srv, name, {"app.py": API_PY}, memory_mb=256)["url"] == url
    assert v1(srv, "DELETE", f"/v1/functions/{name}/url").status_code == 204
    assert shown() is None


@pytest.mark.parametrize("body,mentions", [
    ({"auth": "maybe"}, "auth"),
    ({"auth": None}, "auth"),
    ({"invoke_mode": "STREAMING"}, "invoke_mode"),
    ({"cors": []}, "cors"),
    ({"cors": {"allow_origins": "*"}}, "cors.allow_origins"),
    ({"cors": {"allow_origins": ["example.com"]}}, "cors.allow_origins[0]"),
    ({"cors": {"allow_origins": ["https://x.example"] * 101}}, "at most 100"),
    ({"cors": {"allow_methods": ["FETCH"]}}, "cors.allow_methods[0]"),
    ({"cors": {"allow_methods": ["GET"] * 7}}, "cors.allow_methods"),
    ({"cors": {"allow_headers": ["bad header"]}}, "cors.allow_headers[0]"),
    ({"cors": {"expose_headers": [1]}}, "cors.expose_headers[0]"),
    ({"cors": {"max_age": 86401}}, "cors.max_age"),
    ({"cors": {"max_age": -1}}, "cors.max_age"),
    ({"cors": {"allow_credentials": "yes"}}, "cors.allow_credentials"),
    ({"cors": {"allow_origin": ["*"]}}, "cors.allow_origin"),
    ({"public": True}, "public"),
    ([], "body"),
])
def test_bad_settings_are_400(srv, api, body, mentions):
    before = v1(srv, "GET", f"/v1/functions/{api}/url").json()
    r = v1(srv, "PUT", f"/v1/functions/{api}/url", json=body)
    assert_v1_error(r, 400, mentions)
    assert v1(srv, "GET", f"/v1/functions/{api}/url").json() == before  # nothing changed


def test_bad_json_and_unknown_functions(srv, api):
    assert_v1_error(v1(srv, "PUT", f"/v1/functions/{api}/url", data=b"{not json"), 400, "JSON")
    assert_v1_error(v1(srv, "PUT", f"/v1/functions/{unique('ghost')}/url",
                       json={"auth": "none"}), 404, "no function")


def test_a_url_is_durable_and_goes_with_its_function(server, tmp_path):
    s = server()
    name = unique("durable")
    deploy(s, name, {"app.py": API_PY})
    set_url(s, name, auth="none", cors={"allow_origins": ["https://a.example"]})
    s.restart()
    doc = v1(s, "GET", f"/v1/functions/{name}/url").json()
    assert doc["auth"] == "none" and doc["cors"]["allow_origins"] == ["https://a.example"]
    assert get(s, name, "/plain").status_code == 200
    # Updating the function keeps its URL; deleting it removes the URL.
    deploy(s, name, {"app.py": API_PY}, memory_mb=256)
    assert v1(s, "GET", f"/v1/functions/{name}/url").status_code == 200
    assert v1(s, "DELETE", f"/v1/functions/{name}").status_code == 204
    deploy(s, name, {"app.py": API_PY})
    assert v1(s, "GET", f"/v1/functions/{name}/url").status_code == 404
    s.restart()
    assert v1(s, "GET", f"/v1/functions/{name}/url").status_code == 404


# ---------------------------------------------------------------- the CLI


def test_cli_url_set_get_rm(srv):
    name = unique("cliurl")
    deploy(srv, name, {"app.py": API_PY})
    env = {"MAYFLY_TOKEN": f"{KEY_ID}:{SECRET}"}
    p = srv.cli("url", "set", name, "--auth", "none", "--cors",
                '{"allow_origins":["*"],"max_age":60}', env=env)
    assert p.returncode == 0, p.stderr
    assert f"/url/{name}/" in p.stdout or f"{name}.{DOMAIN}" in p.stdout
    p = srv.cli("url", "get", name, env=env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["auth"] == "none" and doc["cors"]["max_age"] == 60
    assert get(srv, name, "/plain").status_code == 200
    p = srv.cli("url", "set", name, "--auth", "public", env=env)
    assert p.returncode == 2 and "--auth" in p.stderr
    p = srv.cli("url", "set", name, "--invoke-mode", "SOMETIMES", env=env)
    assert p.returncode == 1 and "invoke_mode" in p.stderr
    p = srv.cli("url", "rm", name, env=env)
    assert p.returncode == 0, p.stderr
    p = srv.cli("url", "get", name, env=env)
    assert p.returncode == 1 and "has no URL" in p.stderr


# ---------------------------------------------------------------- awscli


def aws_env(tmp_path):
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": str(empty),
                "AWS_SHARED_CREDENTIALS_FILE": str(empty), "AWS_PAGER": "",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1"})
    return env


def aws(srv, env, *args):
    if not Path(AWS_CLI).exists():
        pytest.fail(f"awscli is missing ({AWS_CLI}): `make deps` installs Debian's awscli")
    return subprocess.run([AWS_CLI, "lambda", *args, "--endpoint-url", srv.url, "--region",
                           REGION, "--output", "json"],
                          capture_output=True, text=True, env=env, timeout=120)


def aws_ok(srv, env, *args):
    p = aws(srv, env, *args)
    assert p.returncode == 0, f"aws lambda {' '.join(args)}: {p.stderr}"
    return json.loads(p.stdout) if p.stdout.strip() else None


def test_awscli_function_url_commands(srv, tmp_path):
    env = aws_env(tmp_path)
    name = unique("awsurl")
    deploy(srv, name, {"app.py": API_PY})
    out = aws_ok(srv, env, "create-function-url-config", "--function-name", name,
                 "--auth-type", "NONE", "--cors",
                 '{"AllowOrigins":["https://app.example"],"AllowMethods":["GET"],"MaxAge":30}')
    assert out["AuthType"] == "NONE"
    assert out["FunctionArn"].endswith(f":function:{name}")
    assert out["Cors"]["AllowOrigins"] == ["https://app.example"] and out["Cors"]["MaxAge"] == 30
    url = out["FunctionUrl"]
    assert url == f"http://{name}.{DOMAIN}/"
    r = requests.get(f"{srv.url}/plain", headers={"Host": f"{name}.{DOMAIN}"}, timeout=120)
    assert r.status_code == 200 and r.text == '"Hello, world!"'

    p = aws(srv, env, "create-function-url-config", "--function-name", name,
            "--auth-type", "NONE")
    assert p.returncode != 0 and "ResourceConflictException" in p.stderr

    got = aws_ok(srv, env, "get-function-url-config", "--function-name", name)
    assert got["FunctionUrl"] == url and got["AuthType"] == "NONE"
    assert got["CreationTime"] and got["LastModifiedTime"]

    upd = aws_ok(srv, env, "update-function-url-config", "--function-name", name,
                 "--auth-type", "AWS_IAM")
    assert upd["AuthType"] == "AWS_IAM"
    assert upd["Cors"]["AllowOrigins"] == ["https://app.example"]  # kept
    assert v1(srv, "GET", f"/v1/functions/{name}/url").json()["auth"] == "key"
    assert get(srv, name, "/plain").status_code == 403

    listed = aws_ok(srv, env, "list-function-url-configs", "--function-name", name)
    assert [c["FunctionUrl"] for c in listed["FunctionUrlConfigs"]] == [url]

    p = aws(srv, env, "update-function-url-config", "--function-name", name,
            "--auth-type", "SOMETIMES")
    assert p.returncode != 0 and "AuthType" in p.stderr

    aws_ok(srv, env, "delete-function-url-config", "--function-name", name)
    p = aws(srv, env, "get-function-url-config", "--function-name", name)
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr
    listed = aws_ok(srv, env, "list-function-url-configs", "--function-name", name)
    assert listed["FunctionUrlConfigs"] == []
    p = aws(srv, env, "get-function-url-config", "--function-name", unique("ghost"))
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr
