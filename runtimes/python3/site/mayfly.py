"""mayfly: the platform's API from inside a function (docs/state.md).

    import mayfly

    cart = mayfly.kv("cart")
    cart.put("alice", {"items": 3}, ttl=3600)
    cart.get("alice")                     # {'items': 3}
    cart.incr("visits")                   # 1, 2, …
    mayfly.invoke("resize", {"key": k})   # another function's result
    mayfly.publish("orders", "shipped", attributes={"kind": "order"})

It speaks HTTP to MAYFLY_API (http://127.0.0.1:9001/mayfly/v1, the
instance's own listener) on one kept-alive connection per thread, with the
function itself as the identity: what it may reach is its `permissions`.
Only the standard library is used. Values are bytes; a dict, list, number,
bool or None is stored as JSON and a str as UTF-8 text, and get() gives
them back as they were put.
"""

import base64
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

__all__ = ["kv", "invoke", "publish", "KV", "Item", "Error", "NotFound", "Forbidden",
           "PreconditionFailed", "FunctionError", "streaming", "http_response"]

# The server closes a connection idle for 60 s; one idle this long is
# replaced before it is used rather than found closed.
_IDLE_S = 50.0


class Error(Exception):
    """The API answered an error: status, code and message as it sent them."""

    def __init__(self, status, code, message):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class NotFound(Error):
    pass


class Forbidden(Error):
    """The function's permissions do not grant what it asked for."""


class PreconditionFailed(Error):
    """A conditional write found the key changed (or present, or absent)."""


class FunctionError(Error):
    """The invoked function failed: error_type and the error document."""

    def __init__(self, error_type, document):
        super().__init__(200, error_type, document.get("errorMessage", "") if isinstance(
            document, dict) else str(document))
        self.error_type, self.document = error_type, document


_ERRORS = {404: NotFound, 403: Forbidden, 412: PreconditionFailed}
_local = threading.local()


def _base():
    url = urllib.parse.urlsplit(os.environ.get("MAYFLY_API", "http://127.0.0.1:9001/mayfly/v1"))
    return url.hostname or "127.0.0.1", url.port or 80, url.path.rstrip("/")


def _with_call(headers):
    """headers, and the request id of the call making the request: on an
    instance serving many calls at once, the server attributes the request
    to that call (docs/concurrency.md)."""
    headers = dict(headers or {})
    runtime = sys.modules.get("_mayfly_runtime")
    request_id = getattr(runtime, "_request_id", None)
    if request_id:
        headers["Lambda-Runtime-Aws-Request-Id"] = request_id
    return headers


def _request(method, path, body=None, headers=None):
    """One request on this thread's connection; returns (status, headers, body)."""
    host, port, prefix = _base()
    conn = getattr(_local, "conn", None)
    if conn is not None and time.monotonic() - _local.used > _IDLE_S:
        conn.close()
        conn = None
    for attempt in (0, 1):
        reused = conn is not None
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=900)
            _local.conn = conn
        try:
            conn.request(method, prefix + path, body=body, headers=_with_call(headers))
            resp = conn.getresponse()
            data = resp.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
            # A kept connection the server closed while idle fails before
            # any answer: the request was not taken, so it goes again once.
            conn.close()
            conn = _local.conn = None
            if attempt == 0 and reused:
                continue
            raise Error(0, "unreachable", f"{method} {path}: {e}") from None
        except Exception:
            conn.close()
            _local.conn = None
            raise
        _local.used = time.monotonic()
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            _local.conn = None
        return resp.status, resp, data
    raise AssertionError("unreachable")


def _fail(status, data):
    try:
        err = json.loads(data)["error"]
        code, message = err.get("code", ""), err.get("message", "")
    except Exception:
        code, message = "", data.decode("utf-8", "replace")
    raise _ERRORS.get(status, Error)(status, code, message)


def _seg(s):
    return urllib.parse.quote(s, safe="")


def _encode(value):
    """(bytes, content type) of a value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), "application/octet-stream"
    if isinstance(value, str):
        return value.encode(), "text/plain; charset=utf-8"
    return json.dumps(value, separators=(",", ":")).encode(), "application/json"


def _decode(data, content_type):
    ct = (content_type or "").split(";")[0].strip().lower()
    if ct == "application/json":
        return json.loads(data)
    if ct == "text/plain":
        return data.decode()
    return data


class Item:
    """A key's value with its version (for if_version) and expiry."""

    def __init__(self, value, version, expires):
        self.value, self.version, self.expires = value, version, expires

    def __repr__(self):
        return f"Item(value={self.value!r}, version={self.version}, expires={self.expires!r})"


class KV:
    """One named store. Keys are str (1–1024 bytes of UTF-8)."""

    def __init__(self, store):
        self.store = store
        self._path = "/kv/" + _seg(store)

    def item(self, key):
        """The key's Item, or None when it is absent (or expired)."""
        status, resp, data = _request("GET", f"{self._path}/{_seg(key)}")
        if status == 404:
            return None
        if status != 200:
            _fail(status, data)
        etag = (resp.getheader("ETag") or "").strip('"')
        return Item(_decode(data, resp.getheader("Content-Type")),
                    int(etag) if etag.isdigit() else None, resp.getheader("X-Mayfly-Expires"))

    def get(self, key, default=None):
        it = self.item(key)
        return default if it is None else it.value

    def put(self, key, value, ttl=None, if_version=None, if_absent=False):
        """Stores value; returns its new version. With if_version (or
        if_absent) the write happens only if the key is still at that
        version (or absent): PreconditionFailed otherwise."""
        body, ctype = _encode(value)
        headers = {"Content-Type": ctype}
        if ttl is not None:
            headers["X-Mayfly-TTL"] = str(int(ttl))
        if if_version is not None:
            headers["If-Match"] = f'"{int(if_version)}"'
        if if_absent:
            headers["If-None-Match"] = "*"
        status, _, data = _request("PUT", f"{self._path}/{_seg(key)}", body, headers)
        if status != 200:
            _fail(status, data)
        return json.loads(data)["version"]

    def incr(self, key, by=1, ttl=None):
        """Adds by to the key's integer (0 when absent), atomically; returns it."""
        doc = {"by": int(by)}
        if ttl is not None:
            doc["ttl"] = int(ttl)
        status, _, data = _request("POST", f"{self._path}/{_seg(key)}/incr",
                                   json.dumps(doc).encode(),
                                   {"Content-Type": "application/json"})
        if status != 200:
            _fail(status, data)
        return json.loads(data)["value"]

    def delete(self, key, if_version=None):
        """True when the key was there and is gone, False when it was absent."""
        headers = {"If-Match": f'"{int(if_version)}"'} if if_version is not None else {}
        status, _, data = _request("DELETE", f"{self._path}/{_seg(key)}", None, headers)
        if status == 404:
            return False
        if status != 204:
            _fail(status, data)
        return True

    def list(self, prefix="", limit=None):
        """Yields {"key","version","size","expires"} in key order, page by page."""
        cursor, left = None, limit
        while True:
            q = {"prefix": prefix, "limit": str(min(left, 1000) if left else 1000)}
            if cursor:
                q["cursor"] = cursor
            status, _, data = _request("GET", f"{self._path}?{urllib.parse.urlencode(q)}")
            if status != 200:
                _fail(status, data)
            page = json.loads(data)
            for k in page["keys"]:
                yield k
                if left is not None:
                    left -= 1
                    if left <= 0:
                        return
            cursor = page.get("next")
            if not cursor:
                return

    def get_many(self, keys):
        """{key: value} of those present, read at one point in time."""
        status, _, data = self._batch({"get": list(keys)})
        out = {}
        for it in data["items"]:
            if it["found"]:
                out[it["key"]] = _decode(base64.b64decode(it["value_base64"]),
                                         it.get("content_type"))
        return out

    def write_many(self, ops):
        """All or nothing. ops are dicts: {"op": "put", "key", "value",
        optional "if_version", "if_absent", "ttl"} and {"op": "delete",
        "key", optional "if_version"}. Returns the new versions (None for
        deletes); PreconditionFailed, and nothing changed, when a condition
        does not hold."""
        items = []
        for op in ops:
            item = dict(op)
            if item.get("op") == "put":
                body, ctype = _encode(item.pop("value", None))
                item.update(value_base64=base64.b64encode(body).decode(), content_type=ctype)
            items.append(item)
        _, _, data = self._batch({"ops": items})
        return data["versions"]

    def _batch(self, doc):
        status, resp, data = _request("POST", f"{self._path}/_batch", json.dumps(doc).encode(),
                                      {"Content-Type": "application/json"})
        if status != 200:
            _fail(status, data)
        return status, resp, json.loads(data)


def kv(store):
    """The named store (the function needs the permission kv:STORE)."""
    return KV(store)


def invoke(name, event=None, asynchronous=False):
    """Calls another function (permission invoke:NAME). Synchronously: its
    result (decoded when JSON), or FunctionError. Asynchronously: the queued
    event's request id, once it is durably queued."""
    body = event if isinstance(event, (bytes, bytearray)) else json.dumps(event).encode()
    headers = {"Content-Type": "application/json"}
    if asynchronous:
        headers["X-Mayfly-Invocation-Type"] = "Event"
    status, resp, data = _request("POST", f"/functions/{_seg(name)}/invoke", body, headers)
    if asynchronous:
        if status != 202:
            _fail(status, data)
        return json.loads(data)["request_id"]
    if status != 200:
        _fail(status, data)
    if resp.getheader("X-Mayfly-Function-Error"):
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {"errorMessage": data.decode("utf-8", "replace")}
        raise FunctionError(doc.get("errorType", "Unhandled") if isinstance(doc, dict)
                            else "Unhandled", doc)
    try:
        return json.loads(data)
    except ValueError:
        return data


def publish(topic, message, subject=None, attributes=None):
    """Publishes message to topic (permission topic:TOPIC): every subscriber
    whose filter policy the attributes pass gets it as SNS's Lambda event.
    message is text (anything else is sent as its JSON); attributes map
    names to SNS's {"Type", "Value"} or to a bare str (String), number
    (Number) or list (String.Array). Returns the message id once the
    message and its deliveries are durably queued."""
    if isinstance(message, (bytes, bytearray)):
        message = bytes(message).decode()
    elif not isinstance(message, str):
        message = json.dumps(message, separators=(",", ":"))
    doc = {"message": message}
    if subject is not None:
        doc["subject"] = subject
    if attributes:
        doc["attributes"] = attributes
    status, _, data = _request("POST", f"/topics/{_seg(topic)}/publish",
                               json.dumps(doc).encode(), {"Content-Type": "application/json"})
    if status != 202:
        _fail(status, data)
    return json.loads(data)["message_id"]


def streaming(handler):
    """Marks handler as streaming its answer (Lambda's RESPONSE_STREAM):
    the runtime calls it as handler(event, stream, context), and what it
    writes to stream (bytes or str) reaches the caller as it is written.

        @mayfly.streaming
        def handler(event, stream, context):
            stream.content_type = "text/plain"
            for i in range(10):
                stream.write(f"line {i}\n")

    The answer ends when the handler returns; an exception raised after
    the first write ends it with the error (the caller sees it in the
    stream's trailers), one raised before is an ordinary function error."""
    handler._mayfly_streaming = True
    return handler


def http_response(stream, status_code=200, headers=None, cookies=None):
    """Makes a streamed answer an HTTP response for a function URL, as
    awslambda.HttpResponseStream.from does in Node: status, headers and
    cookies first (Lambda's HTTP-integration prelude), then the body as
    written. Call it before the first write; returns the stream."""
    return stream.http_response(status_code, headers, cookies)
