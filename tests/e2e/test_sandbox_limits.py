"""A misbehaving function is contained by its sandbox: a memory bomb is an
`oom`, a fork bomb hits the pids limit, filling /tmp fails inside, and from
inside a function cannot see or reach the host. The server and the other
functions carry on through all of it."""

import socket

import pytest

from conftest import (ECHO_PY, deploy_py, get_record, healthy, invoke, invoke_error, invoke_ok,
                      unique)

MAX_PIDS = 32


@pytest.fixture(scope="module")
def srv(module_server_factory):
    # A small pids limit makes the fork bomb quick to contain.
    return module_server_factory("--max-pids", MAX_PIDS)


@pytest.fixture(scope="module")
def bystander(srv):
    """A well-behaved function that must keep working next to the others."""
    name = unique("bystander")
    deploy_py(srv, name, ECHO_PY)
    invoke_ok(srv, name, {"warm": True})
    return name


def assert_unharmed(srv, bystander):
    healthy(srv)
    r = invoke_ok(srv, bystander, {"still": "here"}, timeout=30)
    assert r.json() == {"echo": {"still": "here"}}


MEMORY_BOMB = """
def handler(event, context):
    hoard = []
    for _ in range(300):
        hoard.append(b"x" * (1 << 20))  # written, so every page is really used
    return len(hoard)
"""


def test_memory_bomb_is_an_oom(srv, bystander):
    name = unique("membomb")
    # A timeout far beyond what the bomb needs: the call must end with the
    # OOM kill (an `oom`), not run into its timeout.
    deploy_py(srv, name, MEMORY_BOMB, memory_mb=128, timeout_s=120)
    r, err = invoke_error(srv, name, timeout=300)
    assert err["errorType"] == "Runtime.OutOfMemory", err
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "oom", rec
    assert rec["memory_mb"] == 128
    assert_unharmed(srv, bystander)
    # The next call gets a fresh instance (and runs out of memory again).
    r2, _ = invoke_error(srv, name, timeout=300)
    assert r2.headers["X-Mayfly-Cold-Start"] == "1"


FORK_BOMB = """
import errno, os, time

def handler(event, context):
    children = 0
    failure = None
    for _ in range(10000):
        try:
            pid = os.fork()
        except OSError as e:
            failure = errno.errorcode.get(e.errno, str(e.errno))
            break
        if pid == 0:
            # Every child keeps forking too, as a real bomb does.
            while True:
                try:
                    os.fork()
                except OSError:
                    time.sleep(0.05)
        children += 1
    return {"children": children, "failure": failure}
"""


def test_fork_bomb_is_contained_by_the_pids_limit(srv, bystander):
    name = unique("forkbomb")
    deploy_py(srv, name, FORK_BOMB, timeout_s=3)
    # The bomb ends at its timeout at the latest, its processes and all: the
    # answer comes (the client waits long enough for any machine) and says
    # how it ended.
    r = invoke(srv, name, timeout=120)
    assert r.status_code == 200, r.text
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    if "X-Mayfly-Function-Error" not in r.headers:
        out = r.json()
        assert out["failure"] == "EAGAIN", out
        assert out["children"] < MAX_PIDS, out
        assert rec["status"] == "success", rec
    else:
        assert rec["status"] in ("timeout", "error"), rec
    assert_unharmed(srv, bystander)


TMP_FILL = """
import errno, os

def fill(files, chunks_per_file):
    # Writes 1 GiB of zeros into /tmp, in `files` files; returns the errno
    # name of the failure (None if it all fit) and how many MiB went in.
    chunk = b"\\0" * (1 << 20)
    written = 0
    try:
        for i in range(files):
            with open(f"/tmp/fill{i}", "wb") as f:
                for _ in range(chunks_per_file):
                    f.write(chunk)
                    f.flush()
                    written += 1
        return None, written
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)), written
    finally:
        for i in range(files):
            try:
                os.unlink(f"/tmp/fill{i}")
            except OSError:
                pass

def handler(event, context):
    one_error, one_mb = fill(1, 1024)
    many_error, many_mb = fill(128, 8)
    return {"one": [one_error, one_mb], "many": [many_error, many_mb]}
"""


def test_filling_tmp_fails_inside_the_function(srv, bystander):
    name = unique("tmpfill")
    # Memory above the /tmp size, so what stops the writer is the size of
    # /tmp and not the memory limit (tmpfs pages count as memory).
    deploy_py(srv, name, TMP_FILL, tmp_mb=64, memory_mb=256, timeout_s=20)
    out = invoke_ok(srv, name, timeout=40).json()
    # One big file may meet the file-size limit first; many small ones can
    # only be stopped by the size of /tmp itself.
    assert out["one"][0] in ("ENOSPC", "EFBIG"), out
    assert out["one"][1] <= 64, out
    assert out["many"][0] == "ENOSPC", out
    assert 32 <= out["many"][1] <= 64, out
    assert_unharmed(srv, bystander)


ISOLATION = """
import errno, os, socket

def attempt(fn):
    # "ok", or the errno name of the failure (e.g. EROFS).
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))

def write(path):
    with open(path, "w") as f:
        f.write("x")

def handler(event, context):
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    cmdlines = {}
    for p in pids:
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmdlines[p] = f.read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            pass
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.strip()
    environ_readable = []
    for p in pids:
        if p != os.getpid():
            try:
                with open(f"/proc/{p}/environ", "rb") as f:
                    if f.read():
                        environ_readable.append(p)
            except OSError:
                pass
    return {
        "pids": pids,
        "environ_readable": environ_readable,
        "cmdlines": cmdlines,
        "server_pid_visible": os.path.exists(f"/proc/{event['server_pid']}")
                              and event["server_pid"] not in pids,
        "connect_host_port": attempt(
            lambda: socket.create_connection(("127.0.0.1", event["port"]), 1).close()),
        "connect_outside": attempt(
            lambda: socket.create_connection((event["host_ip"], event["port"]), 1).close()),
        "interfaces": sorted(n for _, n in socket.if_nameindex()),
        "write_task": attempt(lambda: write("/var/task/x")),
        "write_etc": attempt(lambda: write("/etc/x")),
        "write_root": attempt(lambda: write("/x")),
        "write_tmp": attempt(lambda: write("/tmp/x")),
        "task_files": sorted(os.listdir("/var/task")),
        "hostname": socket.gethostname(),
        "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
        "cap_eff": status.get("CapEff"), "cap_bnd": status.get("CapBnd"),
        "no_new_privs": status.get("NoNewPrivs"), "seccomp": status.get("Seccomp"),
    }
"""


def host_ip():
    """A non-loopback address of this machine, or a documentation address
    (TEST-NET-1) if it has none: either way, one only a route out reaches."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent for UDP connect
            return s.getsockname()[0]
        except OSError:
            return "192.0.2.1"


@pytest.fixture(scope="module")
def inside(srv):
    name = unique("isolation")
    deploy_py(srv, name, ISOLATION)
    event = {"server_pid": srv.proc.pid, "port": srv.port, "host_ip": host_ip()}
    return invoke_ok(srv, name, event).json()


def test_cannot_see_host_processes(srv, inside):
    assert len(inside["pids"]) < 10, f"the sandbox sees {len(inside['pids'])} processes"
    assert not inside["server_pid_visible"]
    me = open("/proc/self/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    for pid, cmd in inside["cmdlines"].items():
        assert cmd != me, f"pid {pid} is this test's own process: {cmd}"
    # Whatever else runs in the sandbox (its init) keeps its environment,
    # which may hold the server's secrets, to itself.
    assert not inside["environ_readable"], (
        f"the function can read the environment of {inside['environ_readable']}: "
        f"{inside['cmdlines']}")


def test_cannot_read_the_servers_command_line(srv, inside):
    """The sandbox's init is a fork of the server: it must not show the
    function the server's flags (its port, its data directory)."""
    for pid, cmd in inside["cmdlines"].items():
        assert str(srv.data_dir) not in cmd, f"pid {pid} shows the server's command line: {cmd}"
        assert "--listen" not in cmd, f"pid {pid} shows the server's command line: {cmd}"


def test_cannot_connect_to_the_servers_port(inside):
    assert inside["connect_host_port"] != "ok", "reached the server's port from inside"
    # Not merely refused: there is no route out of the sandbox at all.
    assert inside["connect_outside"] == "ENETUNREACH", inside["connect_outside"]
    assert inside["interfaces"] == ["lo"], inside["interfaces"]


def test_cannot_write_the_code_or_the_system(inside):
    assert inside["write_task"] != "ok", "/var/task is writable"
    assert inside["write_etc"] != "ok", "/etc is writable"
    assert inside["write_root"] != "ok", "/ is writable"
    assert inside["write_tmp"] == "ok", f"/tmp must be writable: {inside['write_tmp']}"
    assert inside["task_files"] == ["app.py"], inside["task_files"]


def test_has_its_own_hostname(inside):
    assert inside["hostname"] != socket.gethostname()


def test_runs_unprivileged(inside):
    # A uid of its own (not root, not the shared nobody), from the range.
    assert inside["uid"] == inside["euid"] and inside["uid"] not in (0, 65534), inside
    assert inside["gid"] == inside["uid"], inside
    assert int(inside["cap_eff"], 16) == 0, f"effective capabilities {inside['cap_eff']}"
    assert int(inside["cap_bnd"], 16) == 0, f"bounding set {inside['cap_bnd']}"
    assert inside["no_new_privs"] == "1"
    assert inside["seccomp"] == "2", "no seccomp filter"
