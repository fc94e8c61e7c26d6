"""Shared fixtures for the end-to-end suite: a factory that starts the real
mayfly binary on a free loopback port, a raw-socket HTTP helper for what
requests cannot do (pipelining, oversized headers, early rejects), and
helpers that build code zips in memory.

MAYFLY_BIN selects the binary (default: bin/mayfly in the repository)."""

import base64
import hashlib
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
MAYFLY_BIN = os.environ.get("MAYFLY_BIN") or str(REPO / "bin" / "mayfly")

# Deadlines for a server that hangs, not timing checks: long enough that a
# loaded machine never meets them.
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60

# The suite only ever talks to loopback; a proxy from the environment must
# not get in between (requests and libcurl both honour these).
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def free_port():
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(url=None, extra=None):
    """The environment the CLI runs with: MAYFLY_URL set, no stray token."""
    env = dict(os.environ)
    env.pop("MAYFLY_TOKEN", None)
    if url is not None:
        env["MAYFLY_URL"] = url
    env.update(extra or {})
    return env


def run_cli(url, *args, input=None, env=None, timeout=60):
    """Runs `mayfly ARGS...` against url; returns the CompletedProcess with
    text stdout and stderr."""
    return subprocess.run(
        [MAYFLY_BIN, *map(str, args)],
        input=input,
        capture_output=True,
        text=True,
        env=cli_env(url, env),
        timeout=timeout,
    )


def _tail(path, limit=8000):
    try:
        data = Path(path).read_text(errors="replace")
    except OSError:
        return "<missing>"
    return data if len(data) <= limit else "...\n" + data[-limit:]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "serial: the test looks at the whole machine (its mounts, say), or at how "
        "its CPUs are shared, where the servers of tests running beside it would show; "
        "`make e2e` runs these alone, after the rest")


_LIVE = set()  # servers running now
_ALL = []  # every server the session created, in order


class Server:
    """One `mayfly server` process. Its stdout and stderr go to files next to
    (not inside) its data directory so a failing test can show them."""

    def __init__(self, workdir, extra_args=(), data_dir=None, env=None, via_env=False,
                 cwd=None):
        self.workdir = Path(workdir)
        self.cwd = cwd
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.extra_args = [str(a) for a in extra_args]
        self.env = env or {}
        self.via_env = via_env
        self.port = None
        self.proc = None
        self._starts = 0
        self._fixed_port = False
        _ALL.append(self)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_path(self):
        return self.workdir / f"stdout.{self._starts}.log"

    @property
    def stderr_path(self):
        return self.workdir / f"stderr.{self._starts}.log"

    def stdout(self):
        return self.stdout_path.read_text(errors="replace")

    def stderr(self):
        return self.stderr_path.read_text(errors="replace")

    def logs(self):
        return (
            f"--- server on port {self.port}, start {self._starts}: "
            f"{' '.join(self.command())}\n"
            f"--- stdout\n{_tail(self.stdout_path)}\n--- stderr\n{_tail(self.stderr_path)}\n"
        )

    def command(self):
        cmd = [MAYFLY_BIN, "server"]
        if not self.via_env:
            cmd += ["--listen", f"127.0.0.1:{self.port}", "--data", str(self.data_dir)]
        return cmd + self.extra_args

    def start(self):
        """Starts the server and waits for its listening line. A port taken
        between choosing and binding it is retried on another port. A
        restart tries the port it had first, so the URL stays the same
        unless something else (with tests running side by side, another
        test's server or client) took the port meanwhile."""
        for attempt in range(3):
            if attempt or not self._fixed_port:
                self.port = free_port()
            if self._spawn_and_wait(last_try=attempt == 2):
                self._fixed_port = True
                return self
        raise AssertionError("unreachable")

    def _spawn_and_wait(self, last_try):
        self._starts += 1
        env = dict(os.environ)
        env.update(self.env)
        if self.via_env:
            env["MAYFLY_LISTEN"] = f"127.0.0.1:{self.port}"
            env["MAYFLY_DATA"] = str(self.data_dir)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                cwd=self.cwd,
            )
        _LIVE.add(self)
        ready = re.compile(rf"mayfly listening on 127\.0\.0\.1:{self.port}\b")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready.search(self.stdout_path.read_text(errors="replace")):
                return True
            if self.proc.poll() is not None:
                _LIVE.discard(self)
                if not last_try and "in use" in self.stderr().lower():
                    return False
                raise AssertionError(
                    f"mayfly server exited with {self.proc.returncode} before listening\n"
                    + self.logs()
                )
            time.sleep(0.02)
        self.kill()
        raise AssertionError(
            f"no 'mayfly listening on 127.0.0.1:{self.port}' line on stdout within "
            f"{START_TIMEOUT_S} s\n" + self.logs()
        )

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        """Sends sig (SIGTERM) and asserts a clean exit 0 (within
        STOP_TIMEOUT_S, a deadline for a server that hangs)."""
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"mayfly server did not exit within {STOP_TIMEOUT_S} s of "
                f"{signal.Signals(sig).name}\n" + self.logs()
            )
        finally:
            _LIVE.discard(self)
        assert rc == 0, f"mayfly server exited with {rc} after {sig!r}\n" + self.logs()
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        _LIVE.discard(self)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cli(self, *args, input=None, env=None, timeout=60):
        return run_cli(self.url, *args, input=input, env=env, timeout=timeout)

    def code_dir(self, sha=None):
        d = self.data_dir / "code"
        return d / sha if sha else d


class ServerFactory:
    def __init__(self, base):
        self.base = Path(base)
        self.servers = []

    def __call__(self, *extra_args, data_dir=None, env=None, via_env=False, start=True,
                 cwd=None):
        srv = Server(
            self.base / f"server{len(self.servers)}",
            extra_args,
            data_dir=data_dir,
            env=env,
            via_env=via_env,
            cwd=cwd,
        )
        self.servers.append(srv)
        return srv.start() if start else srv

    def cleanup(self):
        for srv in self.servers:
            srv.kill()


@pytest.fixture
def server(tmp_path):
    """server(*extra_flags, data_dir=None) starts a fresh mayfly server for
    this test; every server it started is stopped afterwards."""
    factory = ServerFactory(tmp_path / "servers")
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory):
    """Like `server`, for servers a whole test module shares."""
    factory = ServerFactory(tmp_path_factory.mktemp("servers"))
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def shared_server(module_server_factory):
    """One default server per module, for tests that need no fresh state."""
    return module_server_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def _show_server_logs_on_failure(request):
    """A failing test prints the logs of the servers it started and of the
    shared ones still running, so the server's side is in the report."""
    before = len(_ALL)
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        mine = _ALL[before:]
        for srv in [s for s in _ALL[:before] if s in _LIVE] + mine:
            if srv._starts:
                print(srv.logs())


# ---------------------------------------------------------------- zips


class Entry:
    """A zip member with Unix metadata: a mode for a file, or a symlink."""

    def __init__(self, data=b"", mode=None, symlink=None):
        self.data = data
        self.mode = mode
        self.symlink = symlink


def executable(data, mode=0o755):
    return Entry(data, mode=mode)


def symlink(target):
    return Entry(symlink=target)


def make_zip(entries, compression=zipfile.ZIP_DEFLATED):
    """Builds a zip in memory. entries is a dict (or list of pairs) of
    name -> bytes | str | Entry; names are used as given, so `../x` and
    `/abs` can be written on purpose."""
    items = entries.items() if isinstance(entries, dict) else entries
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as z:
        for name, value in items:
            entry = value if isinstance(value, Entry) else Entry(value)
            zi = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            zi.compress_type = compression
            zi.create_system = 3  # Unix, so external_attr carries a mode
            data = entry.data
            if entry.symlink is not None:
                zi.external_attr = 0o120777 << 16
                data = entry.symlink
                zi.compress_type = zipfile.ZIP_STORED
            elif name.endswith("/"):
                zi.external_attr = (0o040755 << 16) | 0x10
            else:
                zi.external_attr = (0o100000 | (entry.mode or 0o644)) << 16
            if isinstance(data, str):
                data = data.encode()
            z.writestr(zi, data)
    return out.getvalue()


PY_HANDLER = "def handler(event, context):\n    return event\n"
PY_APP = {"app.py": PY_HANDLER}


def py_zip(extra=None):
    entries = dict(PY_APP)
    entries.update(extra or {})
    return make_zip(entries)


def b64(data):
    return base64.b64encode(data).decode()


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def fn_body(code=None, **fields):
    """A create body for a python3 function; fields override or, set to
    None, drop the defaults (runtime, handler, code)."""
    body = {
        "runtime": "python3",
        "handler": "app.handler",
        "code": {"zip_base64": b64(py_zip() if code is None else code)},
    }
    for k, v in fields.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    return body


# ---------------------------------------------------------------- errors


def assert_error(resp, status, code, *mentions):
    """Asserts an error response: the status, the JSON shape
    {"error":{"code","message"}}, the code, and that the message mentions
    each item (a string, or a tuple of alternatives; case-insensitive)."""
    body = resp.text if hasattr(resp, "text") else resp.body.decode(errors="replace")
    assert resp.status_code == status, f"expected HTTP {status}, got {resp.status_code}: {body}"
    try:
        doc = json.loads(body)
    except ValueError:
        raise AssertionError(f"error body is not JSON: {body!r}")
    assert isinstance(doc, dict) and isinstance(doc.get("error"), dict), doc
    err = doc["error"]
    assert err.get("code") == code, f"expected code {code!r}: {doc}"
    message = err.get("message")
    assert isinstance(message, str) and message.strip(), f"empty message: {doc}"
    for m in mentions:
        alts = m if isinstance(m, tuple) else (m,)
        assert any(a.lower() in message.lower() for a in alts), (
            f"message {message!r} does not mention {' or '.join(map(repr, alts))}"
        )
    return message


# ---------------------------------------------------------------- raw HTTP


class RawResponse:
    def __init__(self, status_code, reason, headers, body):
        self.status_code = status_code
        self.reason = reason
        self.headers = headers  # lower-case names
        self.body = body

    @property
    def text(self):
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)


class RawConn:
    """A plain socket to the server with a buffered HTTP/1.1 response
    reader, for tests that need control over the bytes on the wire."""

    def __init__(self, port, timeout=60):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_body_until_answered(self, body, chunk=65536):
        """Sends body in pieces, stopping early once the server has
        answered (or closed), as a client does when rejected mid-upload.
        Returns the number of bytes sent."""
        sent = 0
        while sent < len(body):
            readable, _, _ = select.select([self.sock], [], [], 0)
            if readable:
                break
            try:
                sent += self.sock.send(body[sent : sent + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break
        return sent

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed by the server")
        self.buf += data

    def _read_line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_only=False):
        status_line = self._read_line().decode("latin-1")
        parts = status_line.split(" ", 2)
        assert parts[0].startswith("HTTP/1."), f"not an HTTP status line: {status_line!r}"
        headers = {}
        while True:
            line = self._read_line()
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = b""
        if head_only:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                body += self._read_exact(size)
                self._read_exact(2)
        elif "content-length" in headers:
            body = self._read_exact(int(headers["content-length"]))
        else:
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            body, self.buf = self.buf, b""
        return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body)

    def wait_closed(self, timeout):
        """True when the server closes the connection within timeout
        seconds (any bytes it sends first are kept in self.buf)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.buf += data


def raw_request(port, method, path, body=b"", headers=None, timeout=60):
    """One request on a fresh connection; returns a RawResponse."""
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close"}
    hdrs.update(headers or {})
    if body and "Transfer-Encoding" not in hdrs:
        hdrs.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    with RawConn(port, timeout) as c:
        c.send((head + "\r\n").encode())
        if body:
            c.send_body_until_answered(body)
        return c.read_response()


# ---------------------------------------------------------------- functions


def assert_server_refuses(tmp_path, args, mention):
    """`mayfly server` with bad flags args exits 2 and names mention."""
    p = subprocess.run([MAYFLY_BIN, "server", "--listen", f"127.0.0.1:{free_port()}", "--data",
                        str(tmp_path / "d"), *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p
    assert mention in p.stderr


def unique(prefix):
    """A function name no other test (or earlier run) uses."""
    return f"{prefix}-{os.urandom(4).hex()}"


def deploy(srv, name, files, runtime="python3", handler="app.handler", **settings):
    """Creates or updates the function name from files (a dict for make_zip,
    or zip bytes) and returns its JSON. Unless the test sets timeout_s, the
    function gets 60 s: a call's deadline counts from its acceptance, cold
    start included, and a loaded machine can make that take seconds."""
    code = files if isinstance(files, bytes) else make_zip(files)
    settings.setdefault("timeout_s", 60)
    body = {"runtime": runtime, "code": {"zip_base64": b64(code)}}
    if handler is not None:
        body["handler"] = handler
    body.update(settings)
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)
    assert r.status_code in (200, 201), f"deploying {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def kv_counter_py(store):
    """A python3 handler that adds 1 to the key n of the KV store store,
    event["n"] times, through the API inside its sandbox (it needs the
    permission kv:STORE), and returns the values it got."""
    return r"""
import json, os, urllib.request
def handler(event, context):
    got = []
    for _ in range(event["n"]):
        req = urllib.request.Request(os.environ["MAYFLY_API"] + "/kv/%s/n/incr",
                                     data=b'{"by": 1}', method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            got.append(json.loads(r.read())["value"])
    return got
""" % store


def deploy_py(srv, name, source, **settings):
    """Deploys python source as app.py with handler app.handler."""
    return deploy(srv, name, {"app.py": source}, **settings)


def invoke(srv, name, event=None, raw=None, headers=None, timeout=60):
    """POST /v1/functions/name/invoke with event as JSON (or raw bytes)."""
    data = raw if raw is not None else json.dumps({} if event is None else event).encode()
    return requests.post(f"{srv.url}/v1/functions/{name}/invoke", data=data,
                         headers=headers or {}, timeout=timeout)


def invoke_all(srv, name, events, timeout=300):
    """Invokes name with every event at once (a thread each); returns the
    responses in the events' order."""
    import threading
    out = [None] * len(events)

    def one(i):
        out[i] = invoke(srv, name, events[i], timeout=timeout)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def invoke_ok(srv, name, event=None, timeout=60):
    """Invokes and asserts a successful call; returns the response."""
    r = invoke(srv, name, event, timeout=timeout)
    assert r.status_code == 200, f"invoke {name}: HTTP {r.status_code} {r.text}"
    assert "X-Mayfly-Function-Error" not in r.headers, f"invoke {name}: function error {r.text}"
    return r


def invoke_error(srv, name, event=None, timeout=60):
    """Invokes and asserts a function error (200 with X-Mayfly-Function-Error:
    Unhandled and an error document); returns (response, error document)."""
    r = invoke(srv, name, event, timeout=timeout)
    assert r.status_code == 200, f"invoke {name}: HTTP {r.status_code} {r.text}"
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled", (
        f"expected a function error, got headers {dict(r.headers)} body {r.text!r}")
    doc = r.json()
    assert isinstance(doc.get("errorType"), str) and isinstance(doc.get("errorMessage"), str), doc
    return r, doc


def wait_for(what, fn, timeout=60.0, interval=0.05):
    """Polls fn until it returns something truthy; fails naming what. The
    timeout is a deadline for something that never happens, not a timing
    check: keep it long enough for a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def get_record(srv, request_id, timeout=60.0):
    """The invocation record of request_id. Records are written in batches
    off the hot path, so it may take a moment to appear."""
    def fetch():
        r = requests.get(f"{srv.url}/v1/invocations/{request_id}", timeout=10)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"record {request_id}: HTTP {r.status_code} {r.text}"
        rec = r.json()
        return rec if rec.get("status") not in ("queued", "running") else None
    return wait_for(f"the record of {request_id}", fetch, timeout)


def dead_letters(srv, name):
    """A function's dead letters (GET .../dead-letters), newest first."""
    r = requests.get(f"{srv.url}/v1/functions/{name}/dead-letters", timeout=10)
    assert r.status_code == 200, f"dead letters of {name}: HTTP {r.status_code} {r.text}"
    return r.json()["dead_letters"]


def get_logs(srv, name, request_id=None, **params):
    """A function's log lines (GET .../logs) as a list of dicts."""
    if request_id:
        params["request_id"] = request_id
    r = requests.get(f"{srv.url}/v1/functions/{name}/logs", params=params, timeout=10)
    assert r.status_code == 200, f"logs of {name}: HTTP {r.status_code} {r.text}"
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def metrics(srv):
    """GET /metrics as {(name, frozenset of (label, value)): value}."""
    r = requests.get(f"{srv.url}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    out = {}
    for line in r.text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$", line)
        assert m, f"not a Prometheus sample: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    """The sum of name's samples whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def rss_kib(srv):
    """The server process's resident memory in KiB."""
    with open(f"/proc/{srv.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for the server")


def healthy(srv):
    assert srv.alive(), "the server died\n" + srv.logs()
    r = requests.get(f"{srv.url}/healthz", timeout=10)
    assert r.status_code == 200, r.text


ECHO_PY = "def handler(event, context):\n    return {'echo': event}\n"

# Prints what it got, one JSON line ({"rid", "event"}), so a test reads
# each call's request id and event from the function's logs.
RECORDER_PY = """
import json

def handler(event, context):
    print(json.dumps({"rid": context.aws_request_id, "event": event}))
    return {"ok": True}
"""


def build_c_bootstrap(source, out_path):
    """Compiles a C function (source text) with the project's C runtime
    library into out_path, as `make` builds examples/*/bootstrap."""
    out_path = Path(out_path)
    src = out_path.with_suffix(".c")
    src.write_text(source)
    subprocess.run(
        ["gcc", "-std=gnu17", "-O2", "-Wall", "-Werror", f"-I{REPO / 'runtimes' / 'c'}", "-o",
         str(out_path), str(src), str(REPO / "runtimes" / "c" / "mayfly_runtime.c")],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return out_path


# ---------------------------------------------------------------- sandboxes


CGROUP_ROOT = Path("/sys/fs/cgroup")
RUNTIME_BOOTSTRAPS = ("/var/runtime/python3/bootstrap.py", "/var/runtime/nodejs/bootstrap.js")


def mayfly_cgroup_roots():
    """Every `mayfly` cgroup folder the server could have made: under this
    process's own cgroup (the server is our child) and at the top of each
    hierarchy, in every cgroup v1 controller and in the v2 tree."""
    roots = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            path = path.lstrip("/")
            if controllers == "":  # v2 (unified) hierarchy
                bases = [CGROUP_ROOT, CGROUP_ROOT / "unified"]
            else:
                bases = [CGROUP_ROOT / c.replace("name=", "") for c in controllers.split(",")]
            for base in bases:
                for d in (base / path / "mayfly", base / "mayfly"):
                    if d.is_dir():
                        roots.add(d.resolve())
    return roots


def server_cgroups(srv_pid):
    """The cgroup folders (one per controller) a server with this pid made
    for itself, mayfly/server-PID-START: the server names its folder after
    its pid. Below each are `server` (the server's own process) and
    `sandboxes` (every sandbox, with the budget of them all)."""
    tag = re.compile(rf"(^|\D){srv_pid}(\D|$)")
    found = []
    for root in mayfly_cgroup_roots():
        for d in root.iterdir():
            if d.is_dir() and tag.search(d.name):
                found.append(d)
    return found


def server_own_cgroups(srv_pid):
    """The cgroup folders that hold the server's own process, one per
    controller: protected from its sandboxes by a higher CPU weight."""
    return [d / "server" for d in server_cgroups(srv_pid) if (d / "server").is_dir()]


def sandboxes_cgroups(srv_pid):
    """The common parent of a server's sandboxes, one per controller: the
    memory and pids budget of all sandboxes together is written there."""
    return [d / "sandboxes" for d in server_cgroups(srv_pid) if (d / "sandboxes").is_dir()]


def instance_cgroups(srv_pid):
    """The instance cgroup folders below a server's sandboxes folder, in
    every controller. Sandboxes the server keeps prepared for cold starts
    (`pool-*`) are not instances: one becomes an instance (and takes its
    name) when it is used."""
    return [d for s in sandboxes_cgroups(srv_pid) for d in s.iterdir()
            if d.is_dir() and not d.name.startswith("pool-")]


def cgroup_frozen(dirs):
    """Whether the sandbox whose cgroup folders (one per controller, as
    instance_cgroups lists them) are dirs is frozen: v1's freezer.state
    (FROZEN; FREEZING while on its way) or v2's cgroup.freeze. None when no
    folder has a freezer."""
    for d in dirs:
        state = Path(d) / "freezer.state"
        if state.exists():
            return state.read_text().strip() in ("FROZEN", "FREEZING")
        freeze = Path(d) / "cgroup.freeze"
        if freeze.exists():
            return freeze.read_text().strip() == "1"
    return None


def cgroup_pids(d):
    try:
        return {int(p) for p in (Path(d) / "cgroup.procs").read_text().split()}
    except OSError:
        return set()


def proc_cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return None


def proc_environ(pid):
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            env[k.decode(errors="replace")] = v.decode(errors="replace")
    return env


# ---------------------------------------------------------------- PostgreSQL

PG_SH = str(REPO / "tests" / "pg.sh")


class ThrowawayPostgres:
    """A throwaway PostgreSQL (tests/pg.sh): its admin URL, and its server
    stopped and started again with its data kept, for what a node does
    while the database is away."""

    def __init__(self, directory, url):
        self.dir = directory
        self.url = url

    def _run(self, cmd):
        out = subprocess.run([PG_SH, cmd, self.dir], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"tests/pg.sh {cmd}: {out.stderr}"

    def pause(self):
        """Stops the server as a restart does (sessions ended, data kept)."""
        self._run("pause")

    def resume(self):
        """Starts it again; returns once it accepts connections."""
        self._run("resume")


@pytest.fixture(scope="module")
def pg_server():
    """A throwaway PostgreSQL (a ThrowawayPostgres), stopped and removed at
    the end. Its directory is made directly under the system's temporary
    folder: as root, the cluster runs as the `postgres` user, who must be
    able to reach it (pytest's own temporary folders are root's alone)."""
    d = tempfile.mkdtemp(prefix="mayfly-pg-")
    try:
        out = subprocess.run([PG_SH, "start", d], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"tests/pg.sh start: {out.stderr}"
        yield ThrowawayPostgres(d, out.stdout.strip())
    finally:
        subprocess.run([PG_SH, "stop", d], capture_output=True, timeout=300)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(pg_server):
    """The admin URL of the module's throwaway PostgreSQL (pg_server)."""
    return pg_server.url


def psql(url, sql):
    """What sql answers, through Debian's psql: one row a line, columns
    separated by |."""
    out = subprocess.run(["psql", url, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"psql {sql!r}: {out.stderr}"
    return out.stdout.strip()


def database(admin_url, name):
    """A new database on the throwaway server; its URL."""
    psql(admin_url, f"CREATE DATABASE {name}")
    return admin_url.replace("///postgres?", f"///{name}?", 1)
