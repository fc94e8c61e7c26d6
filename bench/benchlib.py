"""Helpers shared by the benchmark's Python harnesses (coldstart.py,
density.py): the mayfly HTTP API over one keep-alive connection, function
packages built from a folder, and what /proc and the cgroup tree say about
the server and its sandboxes. Standard library only (Debian's python3)."""
import argparse
import atexit
import base64
import glob
import io
import json
import re
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import zipfile
from http.client import HTTPConnection
from urllib.parse import urlsplit


class Api:
    """The mayfly HTTP API over one persistent connection."""

    def __init__(self, url, timeout=60):
        u = urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None

    def _connect(self):
        self.conn = HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers as a dict with lower-case names, body)."""
        hdrs = {"Content-Type": "application/json"}
        hdrs.update(headers or {})
        for attempt in (0, 1):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                resp = self.conn.getresponse()
                data = resp.read()
                h = {k.lower(): v for k, v in resp.getheaders()}
                if h.get("connection", "").lower() == "close":
                    self.close()
                return resp.status, h, data
            except (ConnectionError, OSError):
                # The server closed an idle keep-alive connection: one retry
                # on a fresh one (never for an invoke that may have run).
                self.close()
                if attempt or method == "POST":
                    raise
        raise AssertionError("unreachable")

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def put_function(self, name, spec):
        st, _, body = self.request("PUT", "/v1/functions/" + name, json.dumps(spec))
        if st not in (200, 201):
            raise RuntimeError("PUT %s: HTTP %d: %s" % (name, st, body[:300]))

    def delete_function(self, name):
        st, _, body = self.request("DELETE", "/v1/functions/" + name)
        if st not in (204, 404):
            raise RuntimeError("DELETE %s: HTTP %d: %s" % (name, st, body[:300]))

    def invoke(self, name, event=b"{}"):
        return self.request("POST", "/v1/functions/%s/invoke" % name, event)


def zip_files(files):
    """{name: text or bytes} as a zip (stored), base64 for the API."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


def zip_folder(folder):
    """The folder as a zip (executable bits kept), base64 for the API."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, _, files in os.walk(folder):
            for f in sorted(files):
                path = os.path.join(root, f)
                if f == "deploy.args" or "__pycache__" in path:
                    continue
                z.write(path, os.path.relpath(path, folder))
    return base64.b64encode(buf.getvalue()).decode()


def deploy_args(folder):
    """runtime and handler from an example's deploy.args."""
    spec = {}
    path = os.path.join(folder, "deploy.args")
    if os.path.exists(path):
        words = shlex.split(open(path).read())
        for i, w in enumerate(words[:-1]):
            if w == "--runtime":
                spec["runtime"] = words[i + 1]
            elif w == "--handler":
                spec["handler"] = words[i + 1]
    return spec


# ---- /proc ---------------------------------------------------------------

def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def kb_field(text):
    return int(text.split()[0]) if text else 0


def vm_rss_kb(pid):
    return kb_field(proc_status(pid).get("VmRSS", ""))


def rollup_kb(pid):
    """Rss and Pss (KiB) from /proc/PID/smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Rss", "Pss"):
                out[k.lower()] = kb_field(v)
    return out


def children(pid):
    """The direct children of a process (every thread's)."""
    kids = []
    for path in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            kids += [int(x) for x in open(path).read().split()]
        except OSError:
            pass
    return kids


def cpu_busy_ticks(cpus):
    """Busy clock ticks so far of the given CPUs (/proc/stat)."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, _, rest = line.partition(" ")
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in rest.split()]
                # user nice system idle iowait irq softirq steal ...
                total += v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return total


def wait_quiet(pid, timeout=3.0, quiet=0.03):
    """Waits until the server is at rest: its set of children (sandboxes,
    prepared or in use) unchanged and the CPUs it is pinned to busy for no
    new clock tick, both for `quiet` seconds. Whatever it does between
    calls (tearing an instance down, refilling a pool of prepared
    sandboxes) is then over. Returns (settled, seconds waited)."""
    cpus = os.sched_getaffinity(pid)
    start = time.monotonic()
    state, since = None, start
    while True:
        now = time.monotonic()
        cur = (tuple(sorted(children(pid))), cpu_busy_ticks(cpus))
        if cur != state:
            state, since = cur, now
        elif now - since >= quiet:
            return True, now - start
        if now - start >= timeout:
            return False, now - start
        time.sleep(0.002)


# ---- cgroups ------------------------------------------------------------

def server_cgroup_dirs(server_pid):
    """The server's own cgroup directories for its sandboxes: on v1 one
    .../mayfly/server-PID-START per hierarchy (memory, pids, ...), on v2
    the one under the unified tree."""
    dirs = []
    for depth in range(0, 6):
        pattern = "/sys/fs/cgroup/" + "*/" * depth + "mayfly/server-%d-*" % server_pid
        dirs += [d for d in glob.glob(pattern) if os.path.isdir(d)]
    return sorted(set(dirs))


def instance_cgroups(server_pid):
    """{instance id: {"procs": [pid...], "memory_dir": dir or None}}."""
    out = {}
    for tag in server_cgroup_dirs(server_pid):
        is_memory = os.path.exists(os.path.join(tag, "memory.usage_in_bytes")) or \
            os.path.exists(os.path.join(tag, "memory.current")) or \
            os.path.exists(os.path.join(tag, "memory.stat"))
        # Sandboxes live in <tag>/sandboxes (older servers: right in <tag>).
        if os.path.isdir(os.path.join(tag, "sandboxes")):
            tag = os.path.join(tag, "sandboxes")
        for d in sorted(os.listdir(tag)):
            path = os.path.join(tag, d)
            if not os.path.isdir(path):
                continue
            inst = out.setdefault(d, {"procs": [], "memory_dir": None})
            if is_memory and inst["memory_dir"] is None:
                inst["memory_dir"] = path
            try:
                procs = [int(x) for x in open(os.path.join(path, "cgroup.procs")).read().split()]
            except OSError:
                procs = []
            if len(procs) > len(inst["procs"]):
                inst["procs"] = procs
    return out


def kernel_memory_bytes(memory_dir):
    """The cgroup's kernel memory: v1 memory.kmem.usage_in_bytes; v2 the
    "kernel" line of memory.stat (or its parts on older kernels)."""
    if not memory_dir:
        return None
    kmem = os.path.join(memory_dir, "memory.kmem.usage_in_bytes")
    if os.path.exists(kmem):
        try:
            return int(open(kmem).read())
        except (OSError, ValueError):
            return None
    stat = os.path.join(memory_dir, "memory.stat")
    if os.path.exists(stat) and os.path.exists(os.path.join(memory_dir, "memory.current")):
        fields = {}
        for line in open(stat):
            k, _, v = line.partition(" ")
            fields[k] = int(v)
        if "kernel" in fields:
            return fields["kernel"]
        parts = ("kernel_stack", "pagetables", "percpu", "sock", "slab", "vmalloc")
        return sum(fields.get(p, 0) for p in parts)
    return None


def wrk(url, load_cpu, duration, conns, lua=None, latency=False):
    """wrk -t1 on CPU load_cpu against url: (requests per second, its p50 in
    µs with latency=True, else None). A run with non-2xx answers fails."""
    cmd = ["taskset", "-c", str(load_cpu), "wrk", "-t1", "-c%d" % conns, "-d%ds" % duration]
    if latency:
        cmd.append("--latency")
    if lua:
        cmd += ["-s", lua]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=duration + 60)
    m = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not m or "Non-2xx" in out.stdout:
        raise RuntimeError("wrk: " + out.stdout[-400:] + out.stderr[-400:])
    p50 = None
    if latency:
        lm = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out.stdout)
        scale = {"us": 1, "ms": 1e3, "s": 1e6}[lm.group(2)]
        p50 = float(lm.group(1)) * scale
    return float(m.group(1)), p50


def median(values):
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def percentile(values, q):
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def scratch(prefix):
    """A new temporary directory, removed with what is in it when the
    script ends (however it ends, short of being killed)."""
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    return d


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_server(mayfly, cpu, tmp, tag, *extra):
    """`mayfly server` on a free port, pinned to cpu, with its data under
    tmp/data-TAG and its output in tmp/TAG.out; (process, url) once it
    accepts connections."""
    port = free_port()
    data = os.path.join(tmp, "data-" + tag)
    os.makedirs(data, exist_ok=True)
    out = open(os.path.join(tmp, tag + ".out"), "w")
    p = subprocess.Popen(["taskset", "-c", str(cpu), mayfly, "server", "--listen",
                          "127.0.0.1:%d" % port, "--data", data, "--log-level", "warn"]
                         + list(extra), stdout=out, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, url
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
    raise RuntimeError("the server did not start: " + open(out.name).read()[-500:])


def stop_server(p):
    p.terminate()
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        p.kill()


def harness_parser():
    """The arguments every harness bench/run.sh starts takes (--mayfly,
    --server-cpu, --load-cpu, --runs, --out); a harness adds its own."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--mayfly", required=True)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", required=True)
    return ap
