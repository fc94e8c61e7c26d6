"""Credentials are judged from the request's head, before any byte of its
body is read: /v1's bearer token and the Lambda API's SigV4 (everything
the head tells, and the signature itself when x-amz-content-sha256 names
the payload). A refused request is answered at once, with Connection:
close, while its client has sent only the head; authentication comes
before the route's body limit. Clients that do not send
x-amz-content-sha256 (boto3, awscli, the JS SDK: test_lambda_api.py runs
them) are verified in full once the body is in."""

import datetime
import hashlib
import hmac
import os
import threading
import urllib.parse

import pytest
import requests

from conftest import RawConn, assert_error, fn_body, rss_kib, unique

REGION = "us-east-1"
KEY_ID = "AKIAMAYFLYHEAD000001"
SECRET = "head/check+Secret000000000000000000001"
BEARER = f"Bearer {KEY_ID}:{SECRET}"
HUGE = 60 << 20
ASAN_ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                                   "quarantine_size_mb=4"]))}


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"{KEY_ID} {SECRET}\n")
    return module_server_factory("--keys", keys, env=ASAN_ENV)


def head(method, path, length, extra=None):
    lines = [f"{method} {path} HTTP/1.1", "Host: mayfly", "Content-Type: application/json",
             f"Content-Length: {length}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused_at_head(srv, method, path, length, headers=None):
    """Sends only a request's head (no Expect: the client would send its
    body next) and returns the answer, which must come with the connection
    closed after it."""
    with RawConn(srv.port, timeout=60) as c:
        c.send(head(method, path, length, headers))
        r = c.read_response()
        assert r.headers.get("connection", "").lower() == "close", r.headers
        assert c.wait_closed(60), "the connection stayed open after the refusal"
    return r


# ---------------------------------------------------------------- /v1


def test_v1_without_credentials_is_refused_before_the_body(srv):
    r = refused_at_head(srv, "PUT", f"/v1/functions/{unique('anon')}", HUGE)
    assert_error(r, 401, "unauthorized", "credentials")
    assert r.headers.get("www-authenticate", "").startswith("Bearer"), r.headers
    r = refused_at_head(srv, "POST", f"/v1/functions/{unique('anon')}/invoke", 1 << 20,
                        {"Authorization": f"Bearer {KEY_ID}:wrong"})
    assert_error(r, 401, "unauthorized")


def test_v1_authentication_comes_before_the_body_limit(srv):
    # Unauthenticated and over the route's limit: 401, not 413.
    r = refused_at_head(srv, "PUT", f"/v1/functions/{unique('anon')}", 1 << 40)
    assert_error(r, 401, "unauthorized")
    # With credentials the limit applies, still before the body.
    r = refused_at_head(srv, "PUT", f"/v1/functions/{unique('auth')}", 1 << 40,
                        {"Authorization": BEARER})
    assert_error(r, 413, "payload_too_large")


def test_v1_refusal_sends_no_100_continue(srv):
    with RawConn(srv.port, timeout=60) as c:
        c.send(head("PUT", f"/v1/functions/{unique('anon')}", HUGE,
                    {"Expect": "100-continue"}))
        r = c.read_response()
    assert r.status_code == 401, f"{r.status_code}: the first answer must be the refusal"


def test_v1_with_credentials_still_works(srv):
    name = unique("ok")
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=fn_body(), timeout=60,
                     headers={"Authorization": BEARER})
    assert r.status_code == 201, r.text
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=60,
                     headers={"Authorization": BEARER})
    assert r.status_code == 200, r.text


def test_anonymous_unfinished_uploads_cost_the_server_nothing(srv):
    """The audit's case: six anonymous clients each start a 60 MiB PUT. Each
    is refused at its head and stops sending; the server keeps none of it."""
    base = rss_kib(srv)
    results = [None] * 6
    body = b"x" * HUGE

    def upload(i):
        with RawConn(srv.port, timeout=60) as c:
            c.send(head("PUT", f"/v1/functions/{unique('anon')}", HUGE))
            sent = c.send_body_until_answered(body)
            results[i] = (c.read_response().status_code, sent)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    grown_kib = rss_kib(srv) - base
    for status, sent in results:
        assert status == 401
        assert sent < HUGE, "a client sent its whole body before being refused"
    assert grown_kib < 32 << 10, f"the server grew by {grown_kib} KiB"


# ---------------------------------------------------------------- SigV4


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4(method, srv, path, payload_hash, key_id=KEY_ID, secret=SECRET, when=None,
          content_sha256=None):
    """The headers of a SigV4 signature for Lambda. content_sha256, when
    given, is sent (and signed) as x-amz-content-sha256, and is then the
    payload hash signed; otherwise payload_hash (the body's) is."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = when.strftime("%Y%m%d")
    canon_path = "/".join(urllib.parse.quote(urllib.parse.quote(seg, safe="-_.~"), safe="-_.~")
                          for seg in path.split("/"))
    headers = {"host": f"127.0.0.1:{srv.port}", "x-amz-date": amz_date}
    if content_sha256 is not None:
        headers["x-amz-content-sha256"] = content_sha256
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, canon_path, "",
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
                           content_sha256 if content_sha256 is not None else payload_hash])
    scope = f"{day}/{REGION}/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (REGION, "lambda", "aws4_request"):
        k = _hmac(k, part)
    out = {k.title(): v for k, v in headers.items()}
    out["Host"] = headers["host"]
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                            f"SignedHeaders={signed}, "
                            f"Signature={hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()}")
    return out


CREATE = "/2015-03-31/functions"


def signed_head(srv, path, **sign):
    """The head of a signed POST whose body has not been sent."""
    h = sigv4("POST", srv, path, "0" * 64, **sign)
    h.pop("Host")
    return h


def assert_lambda_error(r, status, error_type):
    assert r.status_code == status, f"{r.status_code} {r.text}"
    assert r.headers.get("x-amzn-errortype") == error_type, (r.headers, r.text)
    doc = r.json()
    assert doc.get("__type") == error_type and doc.get("message"), doc


def test_sigv4_unknown_key_is_refused_before_the_body(srv):
    r = refused_at_head(srv, "POST", CREATE, HUGE,
                        signed_head(srv, CREATE, key_id="AKIAUNKNOWN000000000"))
    assert_lambda_error(r, 403, "UnrecognizedClientException")
    assert r.headers.get("x-amzn-requestid"), r.headers


def test_sigv4_stale_date_is_refused_before_the_body(srv):
    when = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    r = refused_at_head(srv, "POST", CREATE, HUGE, signed_head(srv, CREATE, when=when))
    assert_lambda_error(r, 403, "InvalidSignatureException")
    assert "expired" in r.json()["message"].lower(), r.text


def test_sigv4_without_any_signature_is_refused_before_the_body(srv):
    r = refused_at_head(srv, "POST", CREATE, HUGE)
    assert_lambda_error(r, 403, "MissingAuthenticationTokenException")


def test_sigv4_authentication_comes_before_the_body_limit(srv):
    r = refused_at_head(srv, "POST", CREATE, 1 << 40,
                        signed_head(srv, CREATE, key_id="AKIAUNKNOWN000000000"))
    assert_lambda_error(r, 403, "UnrecognizedClientException")


def test_sigv4_wrong_secret_with_declared_payload_is_refused_before_the_body(srv):
    for declared in ("UNSIGNED-PAYLOAD", hashlib.sha256(b"{}").hexdigest()):
        r = refused_at_head(srv, "POST", CREATE, HUGE,
                            signed_head(srv, CREATE, secret="not-the-secret",
                                        content_sha256=declared))
        assert_lambda_error(r, 403, "InvalidSignatureException")


def test_sigv4_wrong_secret_without_declared_payload_is_refused_after_it(srv):
    """What the SDKs send: the signature covers the body's hash, so it is
    checked once the body is in."""
    body = b'{"FunctionName": "x"}'
    h = sigv4("POST", srv, CREATE, hashlib.sha256(body).hexdigest(), secret="not-the-secret")
    r = requests.post(f"{srv.url}{CREATE}", data=body, headers=h, timeout=60)
    assert_lambda_error(r, 403, "InvalidSignatureException")


def test_sigv4_declared_payload_is_served_and_must_match_the_body(srv):
    path = f"{CREATE}/{unique('nobody')}/invocations"
    body = b'{"a": 1}'
    digest = hashlib.sha256(body).hexdigest()
    # Verified from the head, then the body matches: on to the handler
    # (no such function).
    h = sigv4("POST", srv, path, digest, content_sha256=digest)
    r = requests.post(f"{srv.url}{path}", data=body, headers=h, timeout=60)
    assert_lambda_error(r, 404, "ResourceNotFoundException")
    # UNSIGNED-PAYLOAD leaves the body out of the signature.
    h = sigv4("POST", srv, path, digest, content_sha256="UNSIGNED-PAYLOAD")
    r = requests.post(f"{srv.url}{path}", data=b'{"b": 2}', headers=h, timeout=60)
    assert_lambda_error(r, 404, "ResourceNotFoundException")
    # A body other than the one declared: refused once it is in.
    h = sigv4("POST", srv, path, digest, content_sha256=digest)
    r = requests.post(f"{srv.url}{path}", data=b'{"a": 2}', headers=h, timeout=60)
    assert_lambda_error(r, 403, "InvalidSignatureException")
    assert "x-amz-content-sha256" in r.json()["message"], r.text
    # Chunked signing is S3's: refused at the head.
    r = refused_at_head(srv, "POST", path, HUGE,
                        signed_head(srv, path,
                                    content_sha256="STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    assert_lambda_error(r, 403, "InvalidSignatureException")


def test_sigv4_presigned_urls_still_work(srv):
    import boto3  # python3-boto3, from `make deps`
    from botocore.config import Config
    good = boto3.session.Session(aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                                 region_name=REGION).client(
        "lambda", endpoint_url=srv.url, config=Config(retries={"max_attempts": 1}))
    url = good.generate_presigned_url("list_functions", ExpiresIn=300)
    r = requests.get(url, timeout=60)
    assert r.status_code == 200, r.text
    assert isinstance(r.json().get("Functions"), list), r.text
    bad = boto3.session.Session(aws_access_key_id="AKIAUNKNOWN000000000",
                                aws_secret_access_key=SECRET, region_name=REGION).client(
        "lambda", endpoint_url=srv.url, config=Config(retries={"max_attempts": 1}))
    r = requests.get(bad.generate_presigned_url("list_functions", ExpiresIn=300), timeout=60)
    assert_lambda_error(r, 403, "UnrecognizedClientException")


def test_refusals_are_counted(srv):
    text = requests.get(f"{srv.url}/metrics", headers={"Authorization": BEARER}, timeout=60).text
    line = [l for l in text.splitlines()
            if l.startswith('mayfly_http_refused_total{reason="head_check"}')]
    assert line and float(line[0].split()[-1]) >= 1, text[:3000]
