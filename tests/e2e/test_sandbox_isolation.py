"""What a function finds inside its sandbox beyond the basics of
test_sandbox_limits.py: name resolution that works the way common clients
ask for it, a /bin/sh that runs AWS's own custom-runtime tutorial, only the
socket families a function needs, a user id of its own (so per-user kernel
quotas are not shared between functions), and the server's cgroups: its own
protected one and a budget over all sandboxes together."""

import os
import re
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import (MAYFLY_BIN, build_c_bootstrap, cgroup_frozen, cgroup_pids, deploy,
                      deploy_py, executable, instance_cgroups, invoke_ok, server_cgroups,
                      server_own_cgroups, sandboxes_cgroups, unique, wait_for)


def proc_ids(pid):
    """(uid, gid) of a process as the host sees it: the real ids of the
    Uid: and Gid: lines of /proc/PID/status; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    gid = re.search(r"^Gid:\s+(\d+)", status, re.M).group(1)
    return int(uid), int(gid)


def instance_ids(srv):
    """The (uid, gid) pairs of every process in the server's instances,
    sandbox inits included (they take the instance's ids too)."""
    ids = set()
    for d in instance_cgroups(srv.proc.pid):
        for pid in cgroup_pids(d):
            got = proc_ids(pid)
            if got:
                ids.add(got)
    return ids


# ---------------------------------------------------------------- resolution

# A C function that resolves the Runtime API's address the way curl, many
# HTTP libraries and Go's cgo resolver do (AI_ADDRCONFIG), and connects to
# what it got.
ADDRCONFIG_C = r"""
#include "mayfly_runtime.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Appends "KEY":{"results":N,"connected":M} (or {"error":"..."}) for host
 * resolved in family with AI_ADDRCONFIG, connecting to each result; out
 * follows the opening brace or an earlier entry. */
static size_t resolve(char *out, size_t len, const char *key, const char *host, int family)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int rc = getaddrinfo(host, "9001", &hints, &res);
    if (rc != 0)
        return (size_t)snprintf(out, len, "%s\"%s\":{\"error\":\"%s\"}", out[-1] == '{' ? "" : ",",
                                key, gai_strerror(rc));
    int n = 0, connected = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        n++;
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            connected++;
        if (fd >= 0)
            close(fd);
    }
    freeaddrinfo(res);
    return (size_t)snprintf(out, len, "%s\"%s\":{\"results\":%d,\"connected\":%d}",
                            out[-1] == '{' ? "" : ",", key, n, connected);
}

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char body[1024];
    size_t n = 0;
    body[n++] = '{';
    n += resolve(body + n, sizeof body - n, "4:127.0.0.1", "127.0.0.1", AF_INET);
    n += resolve(body + n, sizeof body - n, "any:127.0.0.1", "127.0.0.1", AF_UNSPEC);
    n += resolve(body + n, sizeof body - n, "6:::1", "::1", AF_INET6);
    n += resolve(body + n, sizeof body - n, "any:::1", "::1", AF_UNSPEC);
    n += resolve(body + n, sizeof body - n, "4:localhost", "localhost", AF_INET);
    body[n++] = '}';
    return mayfly_response_set(res, body, n);
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
"""


def host_has_ipv6():
    return Path("/proc/net/if_inet6").exists()


def test_getaddrinfo_with_addrconfig_finds_the_runtime_api(shared_server, tmp_path):
    """glibc's AI_ADDRCONFIG counts an address family as configured only
    when some address of it is not loopback: where 127.0.0.1 and ::1 are
    all there is, asking for IPv4 (as curl, Node's lookups and many HTTP
    libraries do) returns nothing, even for an IP literal. A sandbox needs
    another address of each family for such a client to reach its own
    Runtime API."""
    boot = build_c_bootstrap(ADDRCONFIG_C, tmp_path / "bootstrap")
    name = unique("addrconfig")
    deploy(shared_server, name, {"bootstrap": executable(boot.read_bytes())}, runtime="provided",
           handler=None)
    got = invoke_ok(shared_server, name).json()
    for key in ("4:127.0.0.1", "any:127.0.0.1", "4:localhost"):
        assert got[key] == {"results": 1, "connected": 1}, (key, got)
    if host_has_ipv6():
        # Resolved (the listener is IPv4 only: nothing to connect to).
        for key in ("6:::1", "any:::1"):
            assert got[key].get("results") == 1, (key, got)


ADDRCONFIG_PY = """
import socket

def handler(event, context):
    out = {}
    for host in ("127.0.0.1", "localhost"):
        try:
            out[host] = sorted({ai[4][0] for ai in socket.getaddrinfo(
                host, 9001, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)})
        except socket.gaierror as e:
            out[host] = str(e)
    return out
"""


def test_python_resolves_with_addrconfig(shared_server):
    name = unique("addrconfig-py")
    deploy_py(shared_server, name, ADDRCONFIG_PY)
    got = invoke_ok(shared_server, name).json()
    assert got == {"127.0.0.1": ["127.0.0.1"], "localhost": ["127.0.0.1"]}, got


def test_the_extra_address_opens_no_route_out(shared_server):
    """The address that makes AI_ADDRCONFIG work lives on lo: no interface
    is added and nothing beyond the sandbox becomes reachable."""
    name = unique("noroute")
    deploy_py(shared_server, name, """
import errno, socket

def handler(event, context):
    try:
        socket.create_connection(("192.0.2.1", 80), 1).close()
        outside = "ok"
    except OSError as e:
        outside = errno.errorcode.get(e.errno, str(e.errno))
    return {"interfaces": sorted(n for _, n in socket.if_nameindex()), "outside": outside}
""")
    got = invoke_ok(shared_server, name).json()
    assert got == {"interfaces": ["lo"], "outside": "ENETUNREACH"}, got


# ---------------------------------------------------------------- /bin/sh

# AWS's tutorial "Building a custom runtime" (bootstrap and function.sh),
# as published: #!/bin/sh with bash's `set -o pipefail` and `source`.
TUTORIAL_BOOTSTRAP = """#!/bin/sh

set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the handler function from the script
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
"""

TUTORIAL_FUNCTION = """function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
"""


def test_aws_tutorial_runtime_runs_under_bin_sh(shared_server):
    name = unique("tutorial")
    deploy(shared_server, name, {"bootstrap": executable(TUTORIAL_BOOTSTRAP),
                                 "function.sh": TUTORIAL_FUNCTION},
           runtime="provided.al2023", handler="function.handler")
    r = invoke_ok(shared_server, name, {"key": "value"})
    assert r.text == "Echoing request: '{\"key\": \"value\"}'", r.text
    # Warm: the loop goes round again.
    r = invoke_ok(shared_server, name, {"n": 2})
    assert r.text == "Echoing request: '{\"n\": 2}'", r.text


SH_PY = """
import os, subprocess

def handler(event, context):
    run = lambda script: subprocess.run(["/bin/sh", "-c", script], capture_output=True,
                                        text=True)
    bash = run('echo "$BASH_VERSION"')
    pipefail = run("set -o pipefail && false | true; echo $?")
    # What docs/lambda-compat.md promises beyond pipefail.
    features = run("a=(x y); [[ ${a[1]} == y ]] && echo arrays;"
                   "exec 3<>/dev/tcp/127.0.0.1/9001 && echo tcp")
    return {"bash": bash.stdout.strip(), "pipefail": pipefail.stdout.strip(),
            "features": features.stdout.split(),
            "dash_left_alone": os.path.exists("/usr/bin/dash")
                               and "BASH" not in run("/usr/bin/dash -c 'echo $BASH'").stdout}
"""


def test_bin_sh_is_bash_in_every_runtime(shared_server):
    """Chosen for all sandboxes, not only `provided`: a Python or Node
    function that shells out gets the same /bin/sh as on Lambda."""
    name = unique("binsh-py")
    deploy_py(shared_server, name, SH_PY)
    got = invoke_ok(shared_server, name).json()
    assert got["bash"], f"/bin/sh is not bash: {got}"
    assert got["pipefail"] == "1", got
    assert got["features"] == ["arrays", "tcp"], got
    assert got["dash_left_alone"], got


# ---------------------------------------------------------------- sockets

SOCKETS_PY = """
import errno, socket

def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

def sock(family, kind, proto=0):
    return lambda: socket.socket(family, kind, proto).close()

def pair(family, kind):
    return lambda: [s.close() for s in socket.socketpair(family, kind)]

def handler(event, context):
    return {
        "unix": attempt(sock(socket.AF_UNIX, socket.SOCK_STREAM)),
        "inet": attempt(sock(socket.AF_INET, socket.SOCK_STREAM)),
        "inet6": attempt(sock(socket.AF_INET6, socket.SOCK_DGRAM)),
        "netlink_route": attempt(sock(socket.AF_NETLINK, socket.SOCK_RAW, 0)),
        "netlink_uevent": attempt(sock(socket.AF_NETLINK, socket.SOCK_RAW, 15)),
        "vsock": attempt(sock(40, socket.SOCK_STREAM)),
        "packet": attempt(sock(17, socket.SOCK_RAW)),
        "alg": attempt(sock(38, socket.SOCK_SEQPACKET)),
        "unspec": attempt(sock(0, socket.SOCK_STREAM)),
        "past_the_end": attempt(sock(255, socket.SOCK_STREAM)),
        "pair_unix": attempt(pair(socket.AF_UNIX, socket.SOCK_STREAM)),
        "pair_vsock": attempt(pair(40, socket.SOCK_STREAM)),
    }
"""


def test_only_the_socket_families_a_function_needs(shared_server):
    """AF_VSOCK is not confined by the network namespace (it shares the
    host's vsock port space): only Unix, IPv4, IPv6 and the routing netlink
    (glibc's getaddrinfo asks it for the addresses) are allowed."""
    name = unique("sockets")
    deploy_py(shared_server, name, SOCKETS_PY)
    got = invoke_ok(shared_server, name).json()
    allowed = ("unix", "inet", "inet6", "netlink_route", "pair_unix")
    for k in allowed:
        assert got[k] == "ok", (k, got)
    for k in ("vsock", "packet", "alg", "unspec", "past_the_end", "pair_vsock"):
        assert got[k] == "EAFNOSUPPORT", (k, got)
    assert got["netlink_uevent"] == "EPROTONOSUPPORT", got


# ---------------------------------------------------------------- user ids

INOTIFY_PY = """
import ctypes, errno, os

libc = ctypes.CDLL(None, use_errno=True)
HELD = []

def handler(event, context):
    if event.get("hold"):
        # Takes every inotify instance this user may have, and keeps them
        # (the instance stays warm, holding them).
        while len(HELD) < 100000:
            fd = libc.inotify_init1(os.O_CLOEXEC)
            if fd < 0:
                return {"held": len(HELD), "stopped_by": errno.errorcode.get(ctypes.get_errno())}
            HELD.append(fd)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        return {"inotify": errno.errorcode.get(ctypes.get_errno()), "uid": os.getuid()}
    os.close(fd)
    return {"inotify": "ok", "uid": os.getuid(), "gid": os.getgid()}
"""


def test_functions_run_under_distinct_uids(shared_server):
    a, b = unique("uid-a"), unique("uid-b")
    for n in (a, b):
        deploy_py(shared_server, n, INOTIFY_PY)
    got_a = invoke_ok(shared_server, a).json()
    got_b = invoke_ok(shared_server, b).json()
    assert got_a["uid"] != got_b["uid"], (got_a, got_b)
    for got in (got_a, got_b):
        assert got["uid"] not in (0, 65534), got
        assert got["gid"] == got["uid"], got
    # The host sees the same ids on the instances' processes.
    ids = instance_ids(shared_server)
    assert (got_a["uid"], got_a["gid"]) in ids, ids
    assert (got_b["uid"], got_b["gid"]) in ids, ids


def test_one_function_holding_inotify_instances_does_not_starve_another(shared_server):
    """inotify instances are counted per user: with one uid for all, a
    function holding them all made every other function's inotify_init
    fail with EMFILE."""
    hog, other = unique("inotify-hog"), unique("inotify-other")
    for n in (hog, other):
        deploy_py(shared_server, n, INOTIFY_PY)
    held = invoke_ok(shared_server, hog, {"hold": True}).json()
    assert held["stopped_by"] == "EMFILE" and held["held"] > 0, held
    got = invoke_ok(shared_server, other).json()
    assert got["inotify"] == "ok", got


def test_uid_range_flag_sets_the_ids(server):
    srv = server("--uid-range", "300000:64", "--sandbox-pool", "0", "--zygotes", "0")
    name = unique("uid-range")
    deploy_py(srv, name, INOTIFY_PY)
    got = invoke_ok(srv, name).json()
    assert 300000 <= got["uid"] < 300064, got
    assert (got["uid"], got["uid"]) in instance_ids(srv)


def run_server_flags(tmp_path, *flags):
    return subprocess.run([MAYFLY_BIN, "server", "--listen", "127.0.0.1:0", "--data",
                           str(tmp_path / "data"), *flags],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("value", ["", "100000", "100000:", ":10", "abc:10", "100000:0",
                                   "0:10", "4294967290:10", "65500:100", "-5:10", "10:-1"])
def test_bad_uid_range_is_refused(tmp_path, value):
    p = run_server_flags(tmp_path, "--uid-range", value)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "--uid-range" in p.stderr, p.stderr
    assert "listening" not in p.stdout


def test_uid_range_over_a_local_user_is_refused(tmp_path):
    # root's uid 0 is refused by the syntax check; a range that covers an
    # account of /etc/passwd is refused by the sandbox, naming it.
    users = [line.split(":") for line in Path("/etc/passwd").read_text().splitlines()
             if line.count(":") >= 3]
    uid = next(int(u[2]) for u in users if 0 < int(u[2]) < 65534)
    p = run_server_flags(tmp_path, "--uid-range", f"{uid}:1")
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert "uid" in p.stderr and str(uid) in p.stderr, p.stderr


# ---------------------------------------------------------------- cgroups


def cgroup_file(dirs, name):
    """The content of file name in whichever of dirs (one per hierarchy)
    has it."""
    for d in dirs:
        f = Path(d) / name
        if f.exists():
            return f.read_text().strip()
    raise AssertionError(f"no {name} in {dirs}")


def test_the_server_runs_in_a_protected_cgroup_of_its_own(shared_server):
    pid = shared_server.proc.pid
    own = server_own_cgroups(pid)
    assert own, f"no server cgroup under {server_cgroups(pid)}"
    for d in own:
        assert pid in cgroup_pids(d), f"the server is not in {d}"
    boxes = sandboxes_cgroups(pid)
    assert boxes
    # Instances live below the sandboxes' cgroup, never beside the server.
    name = unique("protected")
    deploy_py(shared_server, name, "def handler(e, c):\n    return 1\n")
    invoke_ok(shared_server, name)
    for d in instance_cgroups(pid):
        assert d.parent in boxes, d
    # CPU: the server outweighs every sandbox together.
    if any((Path(d) / "cpu.shares").exists() for d in own):
        assert int(cgroup_file(own, "cpu.shares")) > int(cgroup_file(boxes, "cpu.shares"))
    elif any((Path(d) / "cpu.weight").exists() for d in own):
        assert int(cgroup_file(own, "cpu.weight")) > int(cgroup_file(boxes, "cpu.weight"))


def limit_bytes(dirs):
    for name in ("memory.limit_in_bytes", "memory.max"):
        for d in dirs:
            if (Path(d) / name).exists():
                return int(cgroup_file([d], name))
    raise AssertionError(f"no memory limit file in {dirs}")


def test_a_budget_bounds_all_sandboxes_together(server):
    srv = server("--sandbox-memory-mb", "1500", "--sandbox-max-pids", "700",
                 "--sandbox-pool", "2", "--zygotes", "0")
    boxes = sandboxes_cgroups(srv.proc.pid)
    # The kernel's limit is the instances' budget plus the prepared
    # sandboxes' share (128 MiB each), so both fit.
    assert limit_bytes(boxes) == (1500 + 2 * 128) << 20
    assert cgroup_file(boxes, "pids.max") == "700"
    assert re.search(r"budget.*1500 MB", srv.stderr()), srv.stderr()


BUDGET_LINE = re.compile(r"sandbox budget: (\d+) MB for instances \+ (\d+) MB for (\d+) prepared "
                         r"sandboxes, (\d+) processes \(this machine: (\d+) MB, (\d+) processes")


def test_the_default_budget_follows_the_machine(shared_server):
    m = BUDGET_LINE.search(shared_server.stderr())
    assert m, shared_server.stderr()
    budget, pool_mb, prepared, pids, machine_mb, machine_pids = map(int, m.groups())
    total_mb = int(re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(),
                             re.M).group(1)) >> 10
    # The machine is MemTotal, or less where the server's cgroup says so.
    assert 0 < machine_mb <= total_mb
    # The documented rule: less a reserve of 1/8 (0.5 to 4 GiB) and the
    # prepared sandboxes' 128 MB each, which the kernel's limit adds back.
    reserve = min(max(machine_mb // 8, 512), 4096)
    assert pool_mb == prepared * 128
    assert budget == max(machine_mb - reserve - pool_mb, 128), m.group(0)
    boxes = sandboxes_cgroups(shared_server.proc.pid)
    assert limit_bytes(boxes) == (budget + pool_mb) << 20
    # Half of what the machine allows in processes.
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    assert machine_pids <= pid_max and pids == max(machine_pids // 2, 64)
    assert cgroup_file(boxes, "pids.max") == str(pids)


@pytest.mark.parametrize("flag,value", [("--sandbox-memory-mb", "0"),
                                        ("--sandbox-memory-mb", "12x"),
                                        ("--sandbox-memory-mb", "-1"),
                                        ("--sandbox-max-pids", "0"),
                                        ("--sandbox-max-pids", "lots")])
def test_bad_budget_flags_are_refused(tmp_path, flag, value):
    p = run_server_flags(tmp_path, flag, value)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert flag in p.stderr, p.stderr


def test_shutdown_leaves_no_cgroup_behind(server):
    srv = server("--sandbox-pool", "1", "--zygotes", "0")
    pid = srv.proc.pid
    name = unique("leave")
    deploy_py(srv, name, "def handler(e, c):\n    return 1\n")
    invoke_ok(srv, name)
    dirs = server_cgroups(pid)
    assert dirs
    srv.stop()
    left = [str(d) for d in dirs if d.exists()]
    assert not left, f"cgroups left behind: {left}"


def test_an_instances_freezer_is_found_with_its_cgroups(server):
    """Each instance has a freezer (v1's freezer hierarchy, v2's
    cgroup.freeze) among the cgroup folders instance_cgroups lists, where a
    test can see whether it is frozen."""
    srv = server("--sandbox-pool", "0", "--zygotes", "0")
    name = unique("freezer")
    deploy_py(srv, name, "def handler(e, c):\n    return 'thawed'\n")
    invoke_ok(srv, name)
    dirs = instance_cgroups(srv.proc.pid)
    assert {d.name for d in dirs} and len({d.name for d in dirs}) == 1, dirs
    # Idle, it is frozen (2 ms after its answer, so by the time a test looks
    # or soon after, however busy the machine).
    wait_for("the idle instance to be frozen", lambda: cgroup_frozen(dirs) is True)
    v1 = [d for d in dirs if (d / "freezer.state").exists()]
    state = v1[0] / "freezer.state" if v1 else dirs[0] / "cgroup.freeze"
    # Thawed by hand it says so; frozen again, as the server left it.
    state.write_text("THAWED" if v1 else "0")
    try:
        assert cgroup_frozen(dirs) is False
    finally:
        state.write_text("FROZEN" if v1 else "1")
    assert cgroup_frozen(dirs) is True
    # The next call thaws it.
    assert invoke_ok(srv, name).json() == "thawed"
