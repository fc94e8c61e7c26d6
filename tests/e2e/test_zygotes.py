"""Pre-started runtimes (zygotes) and prepared sandboxes: a cold start they
serve must be the same function, with the same settings and isolation, as
one that starts its runtime from scratch."""

import re

import requests

from pathlib import Path

from conftest import (
    deploy,
    deploy_py,
    instance_cgroups,
    invoke_ok,
    sandboxes_cgroups,
    unique,
    wait_for,
)

# Reports what a function sees of itself. /proc/self/environ is the
# environment the process was exec'd with: a zygote's has MAYFLY_ZYGOTE_FD,
# a runtime started for its function has the function's variables.
INSPECT_PY = """
import os, socket

def handler(event, context):
    st = os.statvfs("/tmp")
    try:
        open("/var/task/x", "w")
        task_writable = True
    except OSError:
        task_writable = False
    return {
        "zygote": b"MAYFLY_ZYGOTE_FD=" in open("/proc/self/environ", "rb").read(),
        "env": {k: os.environ.get(k) for k in ("FOO", "PYTHONPATH", "AWS_LAMBDA_FUNCTION_NAME",
                                               "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "_HANDLER")},
        "zygote_fd_left": "MAYFLY_ZYGOTE_FD" in os.environ,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "tmp_mb": st.f_blocks * st.f_frsize // (1 << 20),
        "task_writable": task_writable,
        "uid": os.getuid(),
        "hostname": socket.gethostname(),
        "cwd": os.getcwd(),
        "init_cmdline": open("/proc/1/cmdline", "rb").read().decode(errors="replace"),
        "module_file": __file__,
    }
"""

INSPECT_JS = """
const fs = require('fs');
exports.handler = async (event, context) => ({
  zygote: fs.readFileSync('/proc/self/environ').includes('MAYFLY_ZYGOTE_FD='),
  foo: process.env.FOO || null,
  zygoteFdLeft: 'MAYFLY_ZYGOTE_FD' in process.env,
  functionName: context.functionName,
  memory: context.memoryLimitInMB,
  uid: process.getuid(),
});
"""


def pool_ready(srv, kind):
    """Sandboxes of a kind waiting ready, from /metrics."""
    text = requests.get(f"{srv.url}/metrics", timeout=10).text
    m = re.search(r'^mayfly_sandbox_pool_ready\{kind="%s"\} (\d+)$' % kind, text, re.M)
    return int(m.group(1)) if m else 0


def _pooled_server(server, zygotes="2", pool="0"):
    srv = server("--zygotes", zygotes, "--sandbox-pool", pool)
    # The pool fills in the background: wait until its zygotes are ready.
    wait_for("zygotes to be ready", lambda: pool_ready(srv, "python3") == int(zygotes)
             and pool_ready(srv, "nodejs") == int(zygotes), timeout=120)
    return srv


def test_a_python_zygote_becomes_the_function_with_its_settings(server):
    srv = _pooled_server(server)
    name = unique("zpy")
    deploy_py(srv, name, INSPECT_PY, memory_mb=256, tmp_mb=16, env={"FOO": "bar"})
    r = invoke_ok(srv, name)
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    got = r.json()
    assert got["zygote"], "the cold start was not served by a pre-started runtime"
    assert got["env"]["FOO"] == "bar"
    assert got["env"]["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert got["env"]["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert got["env"]["_HANDLER"] == "app.handler"
    assert not got["zygote_fd_left"]
    assert got["function_name"] == name and got["memory"] == 256
    # The function's own /tmp size, not the pool's default, and its code,
    # read-only, where Lambda puts it.
    assert got["tmp_mb"] == 16
    assert got["module_file"] == "/var/task/app.py"
    assert got["cwd"] == "/var/task"
    assert not got["task_writable"]
    # Its own uid, taken when the zygote was prepared (not root, not nobody).
    assert got["uid"] not in (0, 65534)
    # Its init is a fork of the server: not a word of the server's flags.
    assert "--listen" not in got["init_cmdline"] and "server" not in got["init_cmdline"]


def _cpu_weight(d):
    """A sandbox cgroup folder's CPU weight: v1 cpu.shares or v2
    cpu.weight, None in a hierarchy without either."""
    for name in ("cpu.shares", "cpu.weight"):
        f = Path(d) / name
        if f.exists():
            return name, int(f.read_text())
    return None


def test_prepared_sandboxes_wait_at_the_lowest_cpu_weight_and_an_instance_gets_its_own(server):
    # A sandbox prepared ahead (a zygote's runtime starting, say) must not
    # slow an instance's start beside it: it runs at the lowest weight.
    srv = _pooled_server(server)
    pid = srv.proc.pid

    def pool_weights():
        return [w for s in sandboxes_cgroups(pid) for d in s.iterdir()
                if d.is_dir() and d.name.startswith("pool-") and (w := _cpu_weight(d))]

    wait_for("prepared sandboxes", lambda: len(pool_weights()) >= 2, timeout=120)
    for name, w in pool_weights():
        assert w == {"cpu.shares": 8, "cpu.weight": 1}[name], (name, w)
    # Handed out to a function of 128 MB (the pool's own memory), the
    # sandbox gets the weight its memory buys (1769 MB a CPU).
    fn = unique("zweight")
    deploy_py(srv, fn, "def handler(e, c):\n    return 1\n", memory_mb=128)
    r = invoke_ok(srv, fn)
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    weights = [w for d in instance_cgroups(pid) if (w := _cpu_weight(d))]
    assert weights
    for name, w in weights:
        assert w == {"cpu.shares": 128 * 1024 // 1769, "cpu.weight": 128 * 100 // 1769}[name], \
            (name, w)


def test_a_zygote_is_not_used_when_the_env_changes_how_python_starts(server):
    srv = _pooled_server(server)
    name = unique("zpath")
    deploy_py(srv, name, INSPECT_PY, env={"PYTHONPATH": "/var/task/vendor", "FOO": "x"})
    got = invoke_ok(srv, name).json()
    assert not got["zygote"]
    assert got["env"]["PYTHONPATH"] == "/var/task/vendor"
    assert got["env"]["FOO"] == "x"


def test_a_node_zygote_becomes_the_function(server):
    srv = _pooled_server(server)
    name = unique("zjs")
    deploy(srv, name, {"index.js": INSPECT_JS}, runtime="nodejs", handler="index.handler",
           memory_mb=512, env={"FOO": "node"})
    got = invoke_ok(srv, name).json()
    assert got["zygote"], "the cold start was not served by a pre-started runtime"
    assert got["foo"] == "node"
    assert not got["zygoteFdLeft"]
    assert got["functionName"] == name
    assert got["memory"] == "512"
    assert got["uid"] not in (0, 65534)


def test_zygotes_are_refilled_and_each_serves_one_function(server):
    srv = _pooled_server(server, zygotes="1")
    first, second = unique("za"), unique("zb")
    deploy_py(srv, first, INSPECT_PY, env={"FOO": "first"})
    deploy_py(srv, second, INSPECT_PY, env={"FOO": "second"})
    a = invoke_ok(srv, first).json()
    assert a["zygote"] and a["env"]["FOO"] == "first"
    # The pool makes a new zygote once things are quiet; the next cold start
    # gets that one, never the first function's.
    wait_for("a new zygote", lambda: pool_ready(srv, "python3") == 1, timeout=120)
    b = invoke_ok(srv, second).json()
    assert b["zygote"] and b["env"]["FOO"] == "second"
    assert a["hostname"] != b["hostname"]
    # Two sandboxes, two uids: per-user kernel quotas are not shared.
    assert a["uid"] != b["uid"]


def _pool_names(srv):
    from conftest import sandboxes_cgroups
    return {d.name for s in sandboxes_cgroups(srv.proc.pid) for d in s.iterdir()
            if d.is_dir() and d.name.startswith("pool-")}


def test_a_prepared_sandbox_serves_a_provided_function(server, tmp_path):
    from conftest import REPO, build_c_bootstrap, executable
    srv = server("--zygotes", "0", "--sandbox-pool", "2")
    wait_for("prepared sandboxes", lambda: pool_ready(srv, "generic") == 2, timeout=120)
    boot = build_c_bootstrap((REPO / "examples" / "hello-c" / "main.c").read_text(),
                             tmp_path / "bootstrap")
    name = unique("zc")
    deploy(srv, name, {"bootstrap": executable(boot.read_bytes())}, runtime="provided",
           handler=None, tmp_mb=32)
    before = _pool_names(srv)
    r = invoke_ok(srv, name, {"name": "pool"})
    assert r.headers["X-Mayfly-Cold-Start"] == "1"
    assert r.json()["message"] == "hello, pool!"
    # The sandbox it ran in was one of the prepared ones: that cgroup now
    # carries the instance's name (a refill adds new pool names, never the
    # old ones back).
    assert before - _pool_names(srv), "no prepared sandbox was used"
