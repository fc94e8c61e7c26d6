"""mayfly's Python runtime: runs an unchanged AWS Lambda Python handler.

bootstrap.py, the file mayfly starts, imports this module and calls run().
It imports the handler named by _HANDLER ("module.function", where module may
be a path such as "dir/sub.mod") from LAMBDA_TASK_ROOT, then loops on the
Lambda Runtime API at AWS_LAMBDA_RUNTIME_API: GET the next event, call
handler(event, context), POST the JSON result or the error.

Why it looks the way it does:

- Cold start is measured against a bare `python3 -c pass`, so the module
  imports nothing that the interpreter has not already loaded except the C
  extensions _socket and _json (well under a millisecond together).  The
  friendly wrappers cost far more: `json` drags in `re` and `enum` (~7 ms) and
  `http.client` drags in `email` and `ssl` (~25 ms).  `traceback` is imported
  only when something fails, and `logging` not at all: the function's own
  import of it triggers Lambda's set-up (see install_logging()).
- Warm invokes are measured against nginx, so all calls share one persistent
  keep-alive HTTP/1.1 connection with TCP_NODELAY, each request goes out in a
  single send, and the response parser does the least work that is still
  correct (Content-Length, chunked, or read-to-close).
- Error shapes, error type names and messages follow Lambda's own Python
  runtime, so callers and tools that inspect them see what they would see on
  Lambda.
- It is a module rather than the script itself because Python never caches
  the bytecode of the script it runs: compiling this file costs ~4 ms, and a
  module's __pycache__ entry, written at build time (`python3 -m compileall
  runtimes/python3`), is simply loaded.  The runtime directory is read-only
  in the sandbox, so nothing is written there at run time.
"""

import io
import os
import sys
import time

import _json
import _socket

API_PREFIX = "/2018-06-01/runtime"
# Bounds what a misbehaving Runtime API could make us buffer.  The platform
# caps events at 6 MiB; the header block of a real response is a few hundred
# bytes.
MAX_BODY = 16 << 20
MAX_HEAD = 64 << 10
_HEX_DIGITS = b"0123456789abcdefABCDEF"

# Lambda's error type names, so tooling written for Lambda recognises them.
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
CONTEXT_UNMARSHAL_ERROR = "Runtime.LambdaContextUnmarshalError"


class FaultError(Exception):
    """A failure the runtime itself classifies, carrying Lambda's type name."""

    def __init__(self, error_type, message, trace=None):
        Exception.__init__(self, message)
        self.error_type = error_type
        self.message = message
        self.trace = trace


class RuntimeAPIError(Exception):
    """The Runtime API could not be reached or answered nonsense."""


# --- JSON ---------------------------------------------------------------
#
# The C accelerator behind the json package, used directly so the runtime does
# not pay for importing `re`.  The output is exactly json.dumps()/json.loads()
# with default arguments.  Should a future CPython change the private
# signatures, the self-check below fails and we fall back to the json package.


class _DecoderConfig:
    __slots__ = ("strict", "object_hook", "object_pairs_hook", "parse_float",
                 "parse_int", "parse_constant")

    def __init__(self):
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"),
                               "NaN": float("nan")}.__getitem__


_JSON_WS = " \t\n\r"


def _json_default(obj):
    # DynamoDB and boto3 hand out Decimal; Lambda's encoder accepts it, so we
    # do too, without importing decimal ourselves.
    if type(obj).__name__ == "Decimal" and type(obj).__module__ in ("decimal", "_pydecimal"):
        if obj.is_finite() and obj == obj.to_integral_value():
            return int(obj)
        return float(obj)
    raise TypeError(f"Object of type {obj.__class__.__name__} is not JSON serializable")


def _make_fast_json():
    scanner = _json.make_scanner(_DecoderConfig())
    # json.dumps() detects circular references through this dict; it is
    # cleared before each use because an exception can leave entries behind.
    markers = {}
    encoder = _json.make_encoder(markers, _json_default, _json.encode_basestring_ascii,
                                 None, ": ", ", ", False, False, True)

    def loads(text):
        start = len(text) - len(text.lstrip(_JSON_WS))
        try:
            obj, end = scanner(text, start)
        except StopIteration as e:
            raise ValueError(f"Expecting value: line 1 column {e.value + 1} "
                             f"(char {e.value})") from None
        if text[end:].strip(_JSON_WS):
            raise ValueError(f"Extra data: char {end}")
        return obj

    def dumps(obj):
        markers.clear()
        return "".join(encoder(obj, 0))

    probe = {"a": [1, 2.5, None, True, "x\u00e9\n"], "b": {}}
    if dumps(probe) != '{"a": [1, 2.5, null, true, "x\\u00e9\\n"], "b": {}}':
        raise ValueError("json accelerator self-check failed")
    if loads(' {"a": [1, 2.5, null, true, "x\\u00e9"]} ') != {"a": [1, 2.5, None, True, "x\u00e9"]}:
        raise ValueError("json accelerator self-check failed")
    return loads, dumps


try:
    json_loads, json_dumps = _make_fast_json()
except Exception:  # pragma: no cover - only on an unexpected CPython
    import json as _json_pkg

    json_loads = _json_pkg.loads

    def json_dumps(obj):
        return _json_pkg.dumps(obj, default=_json_default)


# --- The Runtime API connection -------------------------------------------


class RuntimeConnection:
    """One persistent HTTP/1.1 connection to the Runtime API.

    Requests are sequential but for one pipelined pair (post_and_next), and
    there is no connection pool.  When the server closes an idle connection
    we reconnect once and retry the request."""

    def __init__(self, address):
        host, sep, port = address.rpartition(":")
        if not sep or not port.isdigit():
            raise RuntimeAPIError(f"bad AWS_LAMBDA_RUNTIME_API {address!r}")
        host = host.strip("[]") or "127.0.0.1"
        self.address = (host, int(port))
        self.host_header = address.encode("latin-1")
        self.sock = None
        self.buf = b""

    def _connect(self):
        family = _socket.AF_INET6 if ":" in self.address[0] else _socket.AF_INET
        sock = _socket.socket(family, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(self.address)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.buf = b""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def request(self, method, path, body=b"", headers=b""):
        """Send one request; return (status, headers dict, body bytes).

        Header names in the returned dict are lower case."""
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%s" % (
            method, path, self.host_header, headers)
        if method == b"GET":
            head += b"\r\n"
        else:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        for attempt in (0, 1):
            reused = self.sock is not None
            try:
                if not reused:
                    self._connect()
                if len(body) < 65536:
                    self.sock.sendall(head + body)
                else:
                    # Avoid copying a large result just to prepend a header.
                    self.sock.sendall(head)
                    self.sock.sendall(body)
                return self._read_response()
            except _EarlyClose:
                self.close()
                # The server closed a reused connection before answering: it
                # was idle and timed out, and nothing was processed, so one
                # retry on a fresh connection is safe.
                if attempt == 0 and reused:
                    continue
                raise RuntimeAPIError(f"{method.decode()} {path.decode()}: "
                                      "connection closed without a response") from None
            except (BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 0 and reused:
                    continue
                raise RuntimeAPIError(f"{method.decode()} {path.decode()}: {e}") from None
            except OSError as e:
                self.close()
                raise RuntimeAPIError(f"{method.decode()} {path.decode()}: {e}") from None
            except RuntimeAPIError:
                self.close()
                raise

    def post_and_next(self, path, body, next_path):
        """Posts a result and asks for the next event in one write.

        The Runtime API answers both in order, and the server, seeing the
        two together, sends the acknowledgement and the next event in one
        write too: one wake-up per invocation on each side instead of two.
        Returns (post status, next response or None when the server closed
        after the first answer), or None when nothing was answered (an
        idle connection the server had closed): then post the plain way."""
        if self.sock is None:
            return None
        head = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n" \
               b"Content-Length: %d\r\n\r\n" % (path, self.host_header, len(body))
        tail = b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (next_path, self.host_header)
        try:
            if len(body) < 65536:
                self.sock.sendall(head + body + tail)
            else:
                self.sock.sendall(head)
                self.sock.sendall(body)
                self.sock.sendall(tail)
            status = self._read_response()[0]
        except (_EarlyClose, BrokenPipeError, ConnectionResetError):
            self.close()
            return None
        except OSError as e:
            self.close()
            raise RuntimeAPIError(f"POST {path.decode()}: {e}") from None
        except RuntimeAPIError:
            self.close()
            raise
        if self.sock is None:
            return status, None
        try:
            return status, self._read_response()
        except (_EarlyClose, OSError) as e:
            self.close()
            raise RuntimeAPIError(f"GET {next_path.decode()}: {e or 'closed'}") from None
        except RuntimeAPIError:
            self.close()
            raise

    def _recv(self):
        data = self.sock.recv(262144)
        if not data:
            raise RuntimeAPIError("connection closed mid-response")
        return data

    def _read_response(self):
        while True:
            buf = self.buf
            first = True
            while True:
                end = buf.find(b"\r\n\r\n")
                if end >= 0:
                    break
                if len(buf) > MAX_HEAD:
                    raise RuntimeAPIError("response header block too large")
                try:
                    data = self.sock.recv(262144)
                except ConnectionResetError:
                    data = b""
                if not data:
                    if first and not buf:
                        raise _EarlyClose()
                    raise RuntimeAPIError("connection closed mid-response")
                first = False
                buf += data
            # One decode of the whole block: str methods on it are cheaper
            # than a decode per header, and latin-1 maps bytes one to one.
            lines = buf[:end].decode("latin-1").split("\r\n")
            rest = buf[end + 4:]
            status_line = lines[0].split(None, 2)
            if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
                raise RuntimeAPIError(f"bad status line {lines[0][:80].encode('latin-1')!r}")
            try:
                status = int(status_line[1])
            except ValueError:
                raise RuntimeAPIError(f"bad status line {lines[0][:80].encode('latin-1')!r}") \
                    from None
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise RuntimeAPIError(f"bad header line {line[:80].encode('latin-1')!r}")
                headers[name.strip().lower()] = value.strip()
            if 100 <= status < 200:
                # An interim response (100 Continue): the real one follows.
                self.buf = rest
                continue
            break
        keep = status_line[0] != "HTTP/1.0" and \
            headers.get("connection", "").lower() != "close"
        te = headers.get("transfer-encoding", "").lower()
        if te and te != "identity":
            if not te.endswith("chunked"):
                raise RuntimeAPIError(f"unsupported transfer-encoding {te!r}")
            body, rest = self._read_chunked(rest)
        elif "content-length" in headers:
            cl = headers["content-length"]
            if not (cl.isascii() and cl.isdigit() and len(cl) < 16) or int(cl) > MAX_BODY:
                raise RuntimeAPIError(f"bad content-length {cl[:40]!r}")
            need = int(cl)
            if len(rest) < need:
                parts = [rest]
                have = len(rest)
                while have < need:
                    data = self._recv()
                    parts.append(data)
                    have += len(data)
                rest = b"".join(parts)
            body, rest = rest[:need], rest[need:]
        elif status in (204, 304):
            body = b""
        else:
            # No framing: the body runs to the end of the connection.
            parts = [rest]
            have = len(rest)
            while True:
                data = self.sock.recv(262144)
                if not data:
                    break
                parts.append(data)
                have += len(data)
                if have > MAX_BODY:
                    raise RuntimeAPIError("response body too large")
            body, rest, keep = b"".join(parts), b"", False
        if keep:
            self.buf = rest
        else:
            self.close()
        return status, headers, body

    def _read_chunked(self, buf):
        parts = []
        total = 0
        while True:
            while b"\r\n" not in buf:
                if len(buf) > MAX_HEAD:
                    raise RuntimeAPIError("bad chunk header")
                buf += self._recv()
            line, _, buf = buf.partition(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or len(size_text) > 15 or size_text.strip(_HEX_DIGITS):
                raise RuntimeAPIError(f"bad chunk size {size_text[:20]!r}")
            size = int(size_text, 16)
            if total + size > MAX_BODY:
                raise RuntimeAPIError("chunked body too large")
            if size == 0:
                # Skip trailers up to and including the empty line.
                while True:
                    while b"\r\n" not in buf:
                        if len(buf) > MAX_HEAD:
                            raise RuntimeAPIError("bad chunk trailer")
                        buf += self._recv()
                    line, _, buf = buf.partition(b"\r\n")
                    if not line:
                        return b"".join(parts), buf
            if len(buf) < size + 2:
                pending = [buf]
                have = len(buf)
                while have < size + 2:
                    data = self._recv()
                    pending.append(data)
                    have += len(data)
                buf = b"".join(pending)
            if buf[size:size + 2] != b"\r\n":
                raise RuntimeAPIError("bad chunk terminator")
            parts.append(buf[:size])
            total += size
            buf = buf[size + 2:]


class _EarlyClose(Exception):
    """The server closed a connection before sending any byte of a response."""


# --- Streamed responses -----------------------------------------------------
#
# A handler marked as streaming (mayfly.streaming, or any function with a
# true `_mayfly_streaming` attribute) is called as handler(event, stream,
# context) and writes its answer to stream as it goes: Lambda's
# RESPONSE_STREAM.  The stream is one POST .../response on a connection of
# its own, with Lambda-Runtime-Function-Response-Mode: streaming and a
# chunked body; each write is a chunk, sent at once (a slow reader of the
# answer slows the writes down, through TCP).  An exception once something
# was written ends the stream with Lambda's error trailers.

METADATA_PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"


class ResponseStream:
    """The writable answer a streaming handler gets."""

    def __init__(self, address, path):
        self._address = address
        self._path = path
        self._conn = None
        self._content_type = "application/octet-stream"
        self._prelude = None
        self.bytes_written = 0
        self.ended = False

    @property
    def started(self):
        return self._conn is not None

    def set_content_type(self, content_type):
        """The answer's content type; only before the first write."""
        if self.started:
            raise ValueError("the content type is set before the first write")
        self._content_type = str(content_type)

    content_type = property(lambda self: self._content_type, set_content_type)

    def http_response(self, status_code=200, headers=None, cookies=None):
        """Makes the answer an HTTP response for a function URL (Lambda's
        HTTP integration): status, headers and cookies go first, in a
        prelude, then what is written is the body.  Returns the stream."""
        prelude = {"statusCode": int(status_code)}
        if headers:
            prelude["headers"] = dict(headers)
        if cookies:
            prelude["cookies"] = list(cookies)
        self.set_content_type(METADATA_PRELUDE_CONTENT_TYPE)
        self._prelude = json_dumps(prelude).encode("utf-8") + b"\0" * 8
        return self

    def _start(self):
        conn = RuntimeConnection(self._address)
        conn._connect()
        head = (b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\n"
                b"Lambda-Runtime-Function-Response-Mode: streaming\r\n"
                b"Transfer-Encoding: chunked\r\n"
                b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
                b"\r\n\r\n" % (self._path, conn.host_header,
                                 self._content_type.encode("latin-1", "replace")))
        self._conn = conn
        conn.sock.sendall(head)
        if self._prelude is not None:
            self._send(self._prelude)

    def _send(self, data):
        self._conn.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def write(self, data):
        """Sends bytes (or str, as UTF-8) to the caller now."""
        if self.ended:
            raise ValueError("write after the stream ended")
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"a response stream takes bytes or str, not "
                            f"{type(data).__name__}")
        if not self.started:
            self._start()
        if len(data):
            self._send(bytes(data))
            self.bytes_written += len(data)
        return len(data)

    def end(self, error=None):
        """Ends the answer: a success, or error (Lambda's error object)
        in the trailers.  Returns the Runtime API's status."""
        if self.ended:
            return 0
        self.ended = True
        if not self.started:
            self._start()
        tail = b"0\r\n"
        if error is not None:
            import binascii

            tail += (b"Lambda-Runtime-Function-Error-Type: " +
                     header_safe(error.get("errorType", "")) + b"\r\n" +
                     b"Lambda-Runtime-Function-Error-Body: " +
                     binascii.b2a_base64(json_dumps(error).encode("utf-8"), newline=False) +
                     b"\r\n")
        conn = self._conn
        try:
            conn.sock.sendall(tail + b"\r\n")
            status, _, reply = conn._read_response()
        finally:
            conn.close()
        if status >= 300 and not (_slot is not None and 400 <= status < 500):
            sys.stderr.write(f"mayfly runtime: streamed response answered {status}: "
                             f"{reply[:200].decode('utf-8', 'replace')}\n")
        return status

    def close(self):
        if self._conn is not None:
            self._conn.close()


# --- The context object ---------------------------------------------------


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __repr__(self):
        return (f"CognitoIdentity([cognito_identity_id={self.cognito_identity_id},"
                f"cognito_identity_pool_id={self.cognito_identity_pool_id}])")


class Client:
    __slots__ = ("installation_id", "app_title", "app_version_name",
                 "app_version_code", "app_package_name")

    def __repr__(self):
        return "Client([" + ",".join(f"{k}={getattr(self, k)}" for k in self.__slots__) + "])"


class ClientContext:
    __slots__ = ("custom", "env", "client")

    def __repr__(self):
        return f"ClientContext([custom={self.custom},env={self.env},client={self.client}])"


def _object_from_dict(cls, data):
    obj = cls()
    get = data.get if isinstance(data, dict) else (lambda _k: None)
    for field in cls.__slots__:
        setattr(obj, field, get(field))
    return obj


def _memory_size():
    try:
        return int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    except ValueError:
        return 128


class LambdaContext:
    """What Lambda passes as the handler's second argument."""

    # The environment does not change once the function is known, so these
    # are read once (again by become(), in a zygote).
    @staticmethod
    def _read_env():
        return (os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
                os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"),
                _memory_size(),
                os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME"),
                os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME"))

    _env = _read_env.__func__()

    def __init__(self, request_id, deadline_ms, arn, client_context, identity, tenant_id=None):
        self.aws_request_id = request_id
        # The call's tenant id under tenant isolation mode, None without.
        self.tenant_id = tenant_id
        self.invoked_function_arn = arn
        self.client_context = client_context
        self.identity = identity
        (self.function_name, self.function_version, self.memory_limit_in_mb,
         self.log_group_name, self.log_stream_name) = self._env
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        remaining = self._deadline_ms - int(time.time() * 1000)
        return remaining if remaining > 0 else 0

    def log(self, msg):
        sys.stdout.write(str(msg))

    def __repr__(self):
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"log_group_name={self.log_group_name},"
                f"log_stream_name={self.log_stream_name},"
                f"function_name={self.function_name},"
                f"memory_limit_in_mb={self.memory_limit_in_mb},"
                f"function_version={self.function_version},"
                f"invoked_function_arn={self.invoked_function_arn},"
                f"client_context={self.client_context},"
                f"identity={self.identity},"
                f"tenant_id={self.tenant_id}])")


def _parse_json_header(value, name):
    try:
        return json_loads(value)
    except Exception as e:
        raise FaultError(CONTEXT_UNMARSHAL_ERROR, f"Unable to parse {name} JSON: {e}")


def make_context(request_id, headers):
    try:
        deadline_ms = int(headers.get("lambda-runtime-deadline-ms", "0"))
    except ValueError:
        deadline_ms = 0
    client_context = None
    raw = headers.get("lambda-runtime-client-context")
    if raw:
        data = _parse_json_header(raw, "Client Context")
        client_context = _object_from_dict(ClientContext, data)
        client_context.client = _object_from_dict(Client, client_context.client) \
            if client_context.client is not None else None
    # As on Lambda, identity is always an object; its fields are None unless
    # the invocation carried a Cognito identity.
    identity = _object_from_dict(CognitoIdentity, None)
    raw = headers.get("lambda-runtime-cognito-identity")
    if raw:
        data = _parse_json_header(raw, "Cognito Identity")
        if isinstance(data, dict):
            identity.cognito_identity_id = data.get("cognitoIdentityId")
            identity.cognito_identity_pool_id = data.get("cognitoIdentityPoolId")
    ctx = LambdaContext(request_id, deadline_ms,
                        headers.get("lambda-runtime-invoked-function-arn"),
                        client_context, identity,
                        headers.get("lambda-runtime-aws-tenant-id"))
    # The call's W3C trace context (mayfly's, beside Lambda's X-Ray header).
    ctx.traceparent = headers.get("mayfly-traceparent")
    return ctx


# --- Errors -----------------------------------------------------------------


def make_error(message, error_type, trace, request_id=None):
    err = {
        "errorMessage": message or "",
        "errorType": error_type or "",
        "requestId": request_id or "",
        "stackTrace": trace or [],
    }
    if request_id is None:
        del err["requestId"]
    return err


def error_from_exception(exc, request_id=None):
    """Lambda's error object for an exception, without our own frames."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    here = __file__
    skip = 0
    while skip < len(frames) and (frames[skip].filename == here or
                                  frames[skip].filename.startswith("<frozen importlib")):
        skip += 1
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    return make_error(message, type(exc).__name__, traceback.format_list(frames[skip:]),
                      request_id)


# --- Logging ----------------------------------------------------------------
#
# What a function writes reaches its log as Lambda's Python runtime writes
# it: the `logging` module's root logger has Lambda's handler, so records
# come out as "[LEVEL]\t<time>Z\t<request id>\t<message>" (or one JSON object
# each with AWS_LAMBDA_LOG_FORMAT=JSON), and the runtime's own error report
# follows the same format.  The platform reads the log a line at a time, so
# a record's own line breaks become "\r", as the Lambda runtime does when it
# writes to a plain stream: one record, one line.
#
# `import logging` costs milliseconds, so the runtime never imports it: a
# finder on sys.meta_path waits for the function's code (or a library it
# uses) to import it, lets the import run, and installs the handler before
# the importer sees the module.  The handler and formatters are in
# _mayfly_logging, loaded at that moment too, so that a function that never
# logs does not even unmarshal them.

# The invocation in flight, for the request id of each record; None while
# the module initialises, as on Lambda, and the last one between calls.
_request_id = None
# Its tenant id under tenant isolation mode (JSON log lines say it), or None.
_tenant_id = None
# AWS_LAMBDA_LOG_FORMAT and AWS_LAMBDA_LOG_LEVEL, read by read_log_config()
# once the function's environment is known (after become() in a zygote).
_log_json = False
_log_level = ""

_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
# The runtime's error report indents its traceback with no-break spaces, as
# Lambda's does, so that log viewers which trim lines keep the indentation.
_NBSP = "\u00a0"


def read_log_config():
    """Lambda's log settings, from the function's environment."""
    global _log_json, _log_level
    _log_json = os.environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
    # Python's logging has no TRACE; Lambda's runtime maps it to DEBUG.
    _log_level = "DEBUG" if level == "TRACE" else level


def write_log(text):
    """Writes one record as one line of the function's log."""
    if text.endswith("\n"):
        text = text[:-1]
    if _slot is not None:
        flush_logs()  # a worker's print without a newline is a line of its own
    sys.stdout.write(text.replace("\n", "\r") + "\n")


def configure_logging(logging):
    """Gives the root logger Lambda's handler, formatter and level."""
    # _mayfly_logging sits beside this module, where sys.path does not look
    # any more (the function's code is first there, as on Lambda).
    from importlib.machinery import PathFinder
    from importlib.util import module_from_spec

    spec = PathFinder.find_spec("_mayfly_logging", [os.path.dirname(os.path.abspath(__file__))])
    setup = module_from_spec(spec)
    spec.loader.exec_module(setup)
    setup.configure(logging, sys.modules[__name__])


class _ConfigureAfterImport:
    """Wraps logging's loader: runs the module, then configures it."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # Introspection (linecache, importlib.reload) sees the real loader.
        module.__loader__ = self.loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        try:
            configure_logging(module)
        except Exception as e:  # the function's import must not fail for it
            sys.stderr.write(f"mayfly runtime: cannot set up logging: {e!r}\n")

    def __getattr__(self, name):
        return getattr(self.loader, name)


class _LoggingFinder:
    """On sys.meta_path until `logging` is first imported."""

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _ConfigureAfterImport(spec.loader)
        return spec


def install_logging():
    """Reads the log settings; configures `logging` now if something
    imported it already, else when it is first imported."""
    read_log_config()
    logging = sys.modules.get("logging")
    if logging is not None:
        configure_logging(logging)
    else:
        sys.meta_path.insert(0, _LoggingFinder())


def log_error(err):
    """Logs the runtime's report of a failed call or init the way Lambda's
    runtime does: in text, [ERROR] Type: message, then the traceback, as one
    line; in JSON, the error object with a timestamp and level."""
    if _log_json:
        doc = {"timestamp": time.strftime(_DATE_FORMAT, time.gmtime()),
               "level": "ERROR",
               "errorMessage": err.get("errorMessage", ""),
               "errorType": err.get("errorType", ""),
               "requestId": err.get("requestId", ""),
               "stackTrace": err.get("stackTrace", [])}
        if _slot is not None:
            # In a worker the request id goes first (see _LineWriter).
            doc = {"timestamp": doc.pop("timestamp"), "level": "ERROR",
                   "requestId": doc.pop("requestId"), **doc}
        line = json_dumps(doc)
    else:
        text = err.get("errorType") or ""
        if err.get("errorMessage"):
            text += (": " if text else "") + err["errorMessage"]
        if _slot is not None and err.get("requestId"):
            # In a worker, Lambda's text format with the request id (see
            # _LineWriter): "[ERROR]\tTIME\tID\tType: message".
            now = time.time()
            line = "[ERROR]\t%s.%03dZ\t%s\t%s" % (time.strftime(_DATE_FORMAT, time.gmtime(now)),
                                                 now % 1 * 1000, err["requestId"], text)
        else:
            line = "[ERROR] " + text if text else "[ERROR]"
        lines = [line, "Traceback (most recent call last):"]
        for entry in err.get("stackTrace") or ():
            if entry == "":
                lines.append("")
                continue
            for text in entry.splitlines():
                stripped = text.lstrip(" ")
                lines.append(_NBSP * (len(text) - len(stripped)) + stripped)
        line = "\r".join(lines)
    flush_logs()
    write_log(line)
    flush_logs()


def header_safe(value):
    """An error type is echoed in a header; keep it printable ASCII."""
    out = "".join(c if " " < c < "\x7f" else "_" for c in value[:128])
    return (out or "Unknown").encode("ascii")


def quote_id(request_id):
    """Request ids go into a URL path; keep them to unreserved characters."""
    if request_id.isascii() and request_id.replace("-", "").isalnum():
        return request_id.encode("ascii")  # a UUID, as every platform's is
    if all(c.isalnum() or c in "-._~" for c in request_id) and request_id.isascii():
        return request_id.encode("ascii")
    return "".join(c if (c.isascii() and (c.isalnum() or c in "-._~"))
                   else "".join("%%%02X" % b for b in c.encode("utf-8"))
                   for c in request_id).encode("ascii")


# --- Handler loading ---------------------------------------------------------


def load_handler(spec):
    modname, dot, fname = spec.rpartition(".")
    if not dot or not modname or not fname:
        raise FaultError(MALFORMED_HANDLER_NAME,
                         f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    if modname.split(".")[0] in sys.builtin_module_names:
        raise FaultError(BUILT_IN_MODULE_CONFLICT,
                         f"Cannot use built-in module {modname} as a handler module")
    import_name = modname.replace("/", ".")
    try:
        __import__(import_name)
        module = sys.modules[import_name]
    except ImportError as e:
        raise FaultError(IMPORT_MODULE_ERROR,
                         f"Unable to import module '{modname}': {e}") from None
    except SyntaxError as e:
        trace = [f'  File "{e.filename}" Line {e.lineno}\n    {e.text}']
        raise FaultError(USER_CODE_SYNTAX_ERROR,
                         f"Syntax error in module '{modname}': {e}", trace) from None
    try:
        return getattr(module, fname)
    except AttributeError:
        raise FaultError(HANDLER_NOT_FOUND,
                         f"Handler '{fname}' missing on module '{modname}'") from None


# --- The loop -------------------------------------------------------------


def flush_logs():
    # The server attributes log lines to the invocation in flight, so
    # everything the handler printed must be out before its result is.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass


def post_error(conn, path, err):
    body = json_dumps(err).encode("utf-8")
    header = b"Lambda-Runtime-Function-Error-Type: " + header_safe(err.get("errorType", "")) + b"\r\n"
    status, _, reply = conn.request(b"POST", path, body, header)
    if status >= 300 and not (_slot is not None and 400 <= status < 500):
        sys.stderr.write(f"mayfly runtime: {path.decode()} answered {status}: "
                         f"{reply[:200].decode('utf-8', 'replace')}\n")


def init_error(conn, err):
    log_error(err)
    try:
        post_error(conn, (API_PREFIX + "/init/error").encode(), err)
    except RuntimeAPIError as e:
        sys.stderr.write(f"mayfly runtime: cannot report the init error: {e}\n")
    sys.exit(1)


def run_streaming(handler, event, context, conn, address, base, request_id):
    """Runs a streaming handler: what it writes goes out as it writes it,
    and its end (or its exception) ends the stream.  An exception before
    anything was written is reported as any function error."""
    stream = ResponseStream(address, base + b"/response")
    err = None
    try:
        handler(event, stream, context)
    except FaultError as e:
        err = make_error(e.message, e.error_type, e.trace, request_id)
    except Exception as e:
        err = error_from_exception(e, request_id)
    try:
        flush_logs()
        if err is not None:
            log_error(err)
            if not stream.started:
                post_error(conn, base + b"/error", err)
                return
        stream.end(err)
    except (OSError, RuntimeAPIError) as e:
        # The platform stopped taking the stream (it ended the call: too
        # large, or its deadline passed): nothing more can be told.
        sys.stderr.write(f"mayfly runtime: streaming the response of {request_id} failed: "
                         f"{e}\n")
        stream.close()


# --- Many calls at once -----------------------------------------------------
#
# With AWS_LAMBDA_MAX_CONCURRENCY=N > 1 (the function's instance_concurrency)
# the instance serves up to N calls at once, the way Lambda's Python runtime
# does on managed instances: the handler's module is imported once, then N
# worker processes are forked from the process that imported it (its
# memory is shared with them until written), each running serve() with a
# connection of its own, so each keeps one poll for the next event open.
# Processes rather than threads: Python code holds the GIL, so threads
# would serve N calls at the speed of one.
#
# The instance's stdout and stderr are shared by its workers, and the
# platform tells their lines apart by the request id in each (the first
# UUID in its first 256 bytes). A worker's sys.stdout and sys.stderr
# therefore write whole lines, each in one write(2) (a line of up to 4 KiB
# reaches the pipe whole, never mixed with another worker's), and a line
# that does not carry the call's request id in its first 256 bytes is given
# it in Lambda's format: "[INFO]\tTIME\tID\tline" ("[ERROR]" for stderr), or,
# with AWS_LAMBDA_LOG_FORMAT=JSON, {"timestamp", "level", "requestId",
# "message"}. The logging handler's records carry the id already.
#
# A worker that dies during a call (os._exit, a signal, the kernel's
# out-of-memory killer) takes only that call: the parent answers it with
# Lambda's Runtime.ExitError and forks a new worker in its place. One that
# exits between calls does so because the Runtime API failed or refused it,
# which the others will meet too: the parent stops them and exits, and the
# platform replaces the instance.

# This worker's slot in the table of calls in flight (a _CallSlot), or None
# outside a worker: the only state serve() reads to know it is one.
_slot = None


class _CallSlot:
    """A worker's entry in memory shared with the parent: the request id of
    the call in flight, empty between calls."""

    SIZE = 256

    def __init__(self, shm, index):
        self.shm = shm
        self.off = index * self.SIZE

    def start(self, request_id):
        data = request_id.encode("utf-8", "replace")[:self.SIZE - 1] + b"\0"
        self.shm[self.off:self.off + len(data)] = data

    def end(self):
        global _request_id
        self.shm[self.off] = 0
        _request_id = None

    def read(self):
        data = self.shm[self.off:self.off + self.SIZE]
        return data[:data.find(b"\0")].decode("utf-8", "replace")


class _LineWriter(io.RawIOBase):
    """A worker's stdout or stderr below its buffers: whole lines, each
    tagged with the call's request id and written in one write(2)."""

    def __init__(self, fd, level):
        io.RawIOBase.__init__(self)
        self.fd = fd
        self.level = level
        self.partial = b""

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def write(self, data):
        n = len(data)
        data = self.partial + bytes(data)
        end = data.rfind(b"\n") + 1
        self.partial = data[end:]
        if end:
            for line in data[:end - 1].split(b"\n"):
                self.emit(line)
        if len(self.partial) > 65536:
            self.end_line()
        return n

    def end_line(self):
        """Writes what is left of a line (a print without a newline) as a
        line of its own, before its call's answer goes out."""
        if self.partial:
            line, self.partial = self.partial, b""
            self.emit(line)

    def emit(self, line):
        request_id = _request_id
        if request_id and request_id.encode("utf-8", "replace") not in line[:256]:
            now = time.time()
            stamp = time.strftime(_DATE_FORMAT, time.gmtime(now)) + ".%03dZ" % (now % 1 * 1000)
            if _log_json:
                line = json_dumps({"timestamp": stamp, "level": self.level,
                                   "requestId": request_id,
                                   "message": line.decode("utf-8", "replace")}).encode()
            else:
                line = b"[%s]\t%s\t%s\t%s" % (self.level.encode(), stamp.encode(),
                                              request_id.encode("utf-8", "replace"), line)
        view = memoryview(line + b"\n")
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except InterruptedError:
                continue
            except OSError:
                return  # the log is gone: so is everything that reads it


def _flush_worker_logs():
    _flush_streams()
    for writer in _line_writers:
        writer.end_line()


_flush_streams = None
_line_writers = ()


def _become_worker(slot):
    """Turns a freshly forked process into a worker: its slot, and standard
    streams that tag their lines."""
    global _slot, _line_writers, _flush_streams, flush_logs
    _slot = slot
    out, err = _LineWriter(1, "INFO"), _LineWriter(2, "ERROR")
    _line_writers = (out, err)
    replaced = {}
    for name, writer in (("stdout", out), ("stderr", err)):
        old = getattr(sys, name)
        new = io.TextIOWrapper(io.BufferedWriter(writer),
                               encoding=getattr(old, "encoding", None) or "utf-8",
                               errors=getattr(old, "errors", None) or "strict",
                               line_buffering=True)
        setattr(sys, name, new)
        if old is not None:
            replaced[id(old)] = new
    # Handlers the function's module made (logging.basicConfig() and the
    # like) hold the streams they were given: they get the new ones.
    logging = sys.modules.get("logging")
    if logging is not None:
        for ref in list(getattr(logging, "_handlerList", ())):
            handler = ref()
            stream = getattr(handler, "stream", None)
            if stream is not None and id(stream) in replaced:
                handler.stream = replaced[id(stream)]
    _flush_streams = flush_logs
    flush_logs = _flush_worker_logs


def _exit_code(exc):
    """What a SystemExit makes of a process's status, as Python decides it."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xff
    sys.stderr.write(f"{exc.code}\n")
    return 1


def _describe_exit(status):
    """A dead worker's status in the platform's (and Lambda's) words."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == 9:
            return "signal: killed"
        import signal

        return f"signal: {signal.strsignal(sig) or sig}"
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return f"status {status}"


def serve_workers(handler, conn, address, n):
    """Forks n workers and waits on them; never returns."""
    import mmap

    shm = mmap.mmap(-1, n * _CallSlot.SIZE)
    workers = {}

    def spawn(index):
        flush_logs()  # nothing buffered here is written twice
        pid = os.fork()
        if pid:
            workers[pid] = index
            return
        code = 1
        try:
            _become_worker(_CallSlot(shm, index))
            serve(RuntimeConnection(address), handler, address)
        except SystemExit as e:
            code = _exit_code(e)
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                flush_logs()
            finally:
                os._exit(code)

    for index in range(n):
        spawn(index)
    invocation_prefix = (API_PREFIX + "/invocation/").encode()
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            sys.exit(1)
        index = workers.pop(pid, None)
        if index is None:
            continue
        slot = _CallSlot(shm, index)
        request_id = slot.read()
        if not request_id:
            # Between calls: the Runtime API is gone or refused the worker.
            for other in workers:
                try:
                    os.kill(other, 9)
                except OSError:
                    pass
            sys.exit(os.waitstatus_to_exitcode(status) & 0xff or 1)
        slot.end()
        err = make_error(f"RequestId: {request_id} Error: Runtime exited with error: "
                         f"{_describe_exit(status)}", "Runtime.ExitError", None, request_id)
        log_error(err)
        try:
            post_error(conn, invocation_prefix + quote_id(request_id) + b"/error", err)
        except RuntimeAPIError as e:
            sys.stderr.write(f"mayfly runtime: reporting {request_id} failed: {e}\n")
            sys.exit(1)
        spawn(index)


def become(fd):
    """Zygote mode: mayfly started this runtime before knowing its function.
    Everything up to here (the interpreter, this module) is initialised; say
    so on fd, then wait there for the function's environment ("K=V" strings,
    NUL-separated, one message). Its code is at /var/task when it arrives."""
    os.write(fd, b"r")
    data = os.read(fd, 1 << 20)
    os.close(fd)
    if not data:
        sys.exit(1)  # the sandbox was let go before it was used
    env = {}
    for item in data.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep and key:
            env[os.fsdecode(key)] = os.fsdecode(value)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    LambdaContext._env = LambdaContext._read_env()


def run():
    address = os.environ.get("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001")
    task_root = os.environ.get("LAMBDA_TASK_ROOT", "/var/task")
    handler_spec = os.environ.get("_HANDLER", "")

    # The function's code, not this runtime's directory, is first on the
    # import path, as on Lambda.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        sys.path[0] = task_root
    else:
        sys.path.insert(0, task_root)
    # The platform's helpers (`import mayfly`), last: a function's own
    # module of that name wins.
    sys.path.append(os.path.join(here, "site"))
    try:
        os.chdir(task_root)
    except OSError:
        pass
    if not getattr(sys.stdout, "write_through", True):
        # Without PYTHONUNBUFFERED a pipe is block-buffered; line buffering keeps
        # print() output prompt, and flush_logs() covers partial lines.
        try:
            sys.stdout.reconfigure(line_buffering=True)
        except Exception:
            pass

    try:
        conn = RuntimeConnection(address)
    except RuntimeAPIError as e:
        sys.stderr.write(f"mayfly runtime: {e}\n")
        sys.exit(1)

    install_logging()
    try:
        handler = load_handler(handler_spec)
    except FaultError as e:
        init_error(conn, make_error(e.message, e.error_type, e.trace))
    except Exception as e:
        # The module imported but raised while running its top level.
        init_error(conn, error_from_exception(e))

    concurrency = max_concurrency()
    if concurrency > 1:
        serve_workers(handler, conn, address, concurrency)
    serve(conn, handler, address)


def max_concurrency():
    """AWS_LAMBDA_MAX_CONCURRENCY: how many calls the instance serves at
    once (1 when absent or not a number)."""
    try:
        return max(1, int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "1")))
    except ValueError:
        return 1


def serve(conn, handler, address):
    """The loop: one call at a time on conn, forever."""
    global _request_id, _tenant_id
    streaming = bool(getattr(handler, "_mayfly_streaming", False))
    next_path = (API_PREFIX + "/invocation/next").encode()
    invocation_prefix = (API_PREFIX + "/invocation/").encode()
    environ = os.environ
    pending = None  # the next event, when it came with the last answer
    while True:
        try:
            if pending is not None:
                status, headers, body = pending
                pending = None
            else:
                status, headers, body = conn.request(b"GET", next_path)
        except RuntimeAPIError as e:
            sys.stderr.write(f"mayfly runtime: waiting for the next event failed: {e}\n")
            sys.exit(1)
        if status != 200:
            sys.stderr.write(f"mayfly runtime: next event: HTTP {status}: "
                             f"{body[:200].decode('utf-8', 'replace')}\n")
            sys.exit(1)
        request_id = headers.get("lambda-runtime-aws-request-id", "")
        _request_id = request_id
        if _slot is not None:
            _slot.start(request_id)
        _tenant_id = headers.get("lambda-runtime-aws-tenant-id")
        trace_id = headers.get("lambda-runtime-trace-id")
        if trace_id:
            environ["_X_AMZN_TRACE_ID"] = trace_id
        elif "_X_AMZN_TRACE_ID" in environ:
            del environ["_X_AMZN_TRACE_ID"]
        traceparent = headers.get("mayfly-traceparent")
        if traceparent:
            environ["TRACEPARENT"] = traceparent
        elif "TRACEPARENT" in environ:
            del environ["TRACEPARENT"]
        base = invocation_prefix + quote_id(request_id)

        err = None
        try:
            context = make_context(request_id, headers)
            try:
                event = json_loads(body.decode("utf-8"))
            except Exception as e:
                raise FaultError(UNMARSHAL_ERROR, f"Unable to unmarshal input: {e}")
            if streaming:
                run_streaming(handler, event, context, conn, address, base, request_id)
                if _slot is not None:
                    _slot.end()
                continue
            result = handler(event, context)
            if isinstance(result, (bytes, bytearray)):
                payload = bytes(result)
            else:
                try:
                    payload = json_dumps(result).encode("utf-8")
                except Exception as e:
                    raise FaultError(MARSHAL_ERROR, f"Unable to marshal response: {e}")
        except FaultError as e:
            err = make_error(e.message, e.error_type, e.trace, request_id)
        except Exception as e:
            err = error_from_exception(e, request_id)

        try:
            if err is None:
                flush_logs()
                both = conn.post_and_next(base + b"/response", payload, next_path)
                if both is not None:
                    status, pending = both
                    reply = b""
                else:
                    status, _, reply = conn.request(b"POST", base + b"/response", payload)
                # With many calls at once, a call past its deadline was
                # failed by the platform and its late answer is refused
                # (4xx): nothing is wrong with this worker.
                if status >= 300 and not (_slot is not None and 400 <= status < 500):
                    sys.stderr.write(f"mayfly runtime: response for {request_id} answered "
                                     f"{status}: {reply[:200].decode('utf-8', 'replace')}\n")
            else:
                log_error(err)
                post_error(conn, base + b"/error", err)
        except RuntimeAPIError as e:
            sys.stderr.write(f"mayfly runtime: reporting {request_id} failed: {e}\n")
            sys.exit(1)
        if _slot is not None:
            _slot.end()

