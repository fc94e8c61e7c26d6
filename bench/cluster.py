#!/usr/bin/python3
"""The cluster row of bench/run.sh: the PostgreSQL store against SQLite,
and several nodes on one PostgreSQL against one.

Store: one server on SQLite (--data) and one on a throwaway PostgreSQL
(tests/pg.sh, a Unix socket, fsync on: the figure is a durable one), each
pinned to the server CPU, the load on the other CPU with PostgreSQL's
processes (a database runs on a machine of its own in a cluster; here the
other CPU is the nearest thing).
The C no-op (examples/noop-c, max_concurrency 64): warm synchronous
invokes and asynchronous enqueues from 32 connections (wrk -c32), each
run after the backlog of the one before has drained, alternated, RUNS
times, medians. Targets: PostgreSQL's enqueues >= 0.5x SQLite's, its warm
invokes >= 0.9x. How much of its CPU the node left idle is recorded for
every store run: a node that idles under 32 connections is waiting, for
its requests (wrk shares its CPU with the database) or, enqueueing, for
the database's commits.

Scaling: three nodes on one PostgreSQL, each in a cgroup of its own
limited to half a CPU (cpu.cfs_quota_us on cgroup v1, cpu.max on v2; the
node's sandboxes are made under its cgroup, so they count in its half),
against one such node alone on a database of its own; the same wrk runs,
one wrk per node at once (32 connections each, on the load CPU), their
rates summed. PostgreSQL may use any CPU here (a machine of its own in a
cluster; pinned beside three wrk, it was the limit). The CPU time the
nodes' cgroups used meanwhile is counted too (cpuacct.usage on v1,
cpu.stat on v2): where three nodes get less than their 1.5 CPUs, the box
(two CPUs for three half-CPU nodes, their database and the load) is the
limit, not the nodes. Target: the three nodes >= 2.4x the one (0.8 of
linear), for warm invokes and for enqueues.

  cluster.py --mayfly BIN --server-cpu N --load-cpu N --runs R --duration S --out FILE

Writes JSON: every sample and the medians. Standard library, plus wrk,
psql and tests/pg.sh.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
PG_SH = os.path.join(ROOT, "tests", "pg.sh")
POST_LUA, EVENT_LUA = os.path.join(HERE, "post.lua"), os.path.join(HERE, "event.lua")


def wrk(url, load_cpu, duration, lua):
    return benchlib.wrk(url, load_cpu, duration, 32, lua)[0]


def psql(url, sql):
    out = subprocess.run(["psql", url, "-X", "-A", "-t", "-c", sql], capture_output=True,
                         text=True, timeout=120)
    if out.returncode:
        raise RuntimeError("psql %r: %s" % (sql, out.stderr))
    return out.stdout.strip()


class Postgres:
    """A throwaway PostgreSQL, pinned to cpu, with fsync on."""

    def __init__(self, cpu):
        self.dir = tempfile.mkdtemp(prefix="mayfly-bench-pg-")
        out = subprocess.run(["taskset", "-c", str(cpu), PG_SH, "start", self.dir],
                             capture_output=True, text=True, timeout=300)
        if out.returncode:
            raise RuntimeError("tests/pg.sh start: " + out.stderr)
        self.admin = out.stdout.strip()
        # The tests' cluster runs without fsync; a store's figures are
        # durable ones.
        psql(self.admin, "ALTER SYSTEM SET fsync = on")
        psql(self.admin, "SELECT pg_reload_conf()")
        self.n = 0

    def unpin(self):
        """Lets the server and its sessions (those to come too: they are
        forked from the postmaster) run on every CPU."""
        with open(os.path.join(self.dir, "data", "postmaster.pid")) as f:
            pid = f.readline().strip()
        cpus = "0-%d" % (os.cpu_count() - 1)
        subprocess.run(["taskset", "-a", "-c", "-p", cpus, pid], capture_output=True, check=True)
        kids = subprocess.run(["ps", "-o", "pid=", "--ppid", pid], capture_output=True,
                              text=True).stdout.split()
        for k in kids:
            subprocess.run(["taskset", "-a", "-c", "-p", cpus, k], capture_output=True)

    def database(self):
        self.n += 1
        name = "bench%d" % self.n
        psql(self.admin, "CREATE DATABASE " + name)
        return self.admin.replace("///postgres?", "///%s?" % name, 1)

    def stop(self):
        subprocess.run([PG_SH, "stop", self.dir], capture_output=True, timeout=300)
        shutil.rmtree(self.dir, ignore_errors=True)


class Cgroup:
    """A cgroup limited to half a CPU, for one node, which also counts the
    CPU time the node and its sandboxes use."""

    def __init__(self, tag):
        self.v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
        if self.v2:
            base = "/sys/fs/cgroup"
            with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                f.write("+cpu")
            self.path = os.path.join(base, "mayfly-bench-" + tag)
            os.makedirs(self.path, exist_ok=True)
            with open(os.path.join(self.path, "cpu.max"), "w") as f:
                f.write("50000 100000")
            self.paths = [self.path]
        else:
            base = next(p for p in ("/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu")
                        if os.path.isdir(p))
            self.path = os.path.join(base, "mayfly-bench-" + tag)
            os.makedirs(self.path, exist_ok=True)
            with open(os.path.join(self.path, "cpu.cfs_period_us"), "w") as f:
                f.write("100000")
            with open(os.path.join(self.path, "cpu.cfs_quota_us"), "w") as f:
                f.write("50000")
            self.paths = [self.path]
            # cpuacct may be a hierarchy of its own: the node joins both.
            self.acct = self.path
            if not os.path.exists(os.path.join(self.path, "cpuacct.usage")):
                self.acct = os.path.join("/sys/fs/cgroup/cpuacct", "mayfly-bench-" + tag)
                os.makedirs(self.acct, exist_ok=True)
                self.paths.append(self.acct)
        self.procs = [os.path.join(p, "cgroup.procs") for p in self.paths]

    def cpu_s(self):
        """CPU seconds used by everything in it so far."""
        if self.v2:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    if line.startswith("usage_usec "):
                        return int(line.split()[1]) / 1e6
            return 0.0
        with open(os.path.join(self.acct, "cpuacct.usage")) as f:
            return int(f.read()) / 1e9

    def remove(self):
        # The node is gone; what it left under it (mayfly/...) goes first.
        for path in self.paths:
            for d, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def start_node(mayfly, tmp, tag, store, cpu=None, cgroup=None):
    """A node on store (a URL, or None for SQLite), pinned to cpu or placed
    in cgroup from its start; (process, url)."""
    port = benchlib.free_port()
    data = os.path.join(tmp, "data-" + tag)
    os.makedirs(data, exist_ok=True)
    out = open(os.path.join(tmp, tag + ".out"), "w")
    cmd = [mayfly, "server", "--listen", "127.0.0.1:%d" % port, "--data", data,
           "--log-level", "warn"]
    if store:
        cmd += ["--store", store]
    if cgroup:
        # The harness runs this script pinned to the load CPU; a node in a
        # cgroup is limited by its quota, not by that pinning: every CPU.
        cmd = ["taskset", "-c", "0-%d" % (os.cpu_count() - 1), "sh", "-c",
               'for f in $0; do echo $$ > "$f" || exit 1; done; exec "$@"',
               " ".join(cgroup.procs)] + cmd
    elif cpu is not None:
        cmd = ["taskset", "-c", str(cpu)] + cmd
    p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    for _ in range(400):
        try:
            st, _, _ = benchlib.Api(url, timeout=2).request("GET", "/healthz")
            if st == 200:
                return p, url
        except OSError:
            pass
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError("node %s did not start: %s" % (tag, open(out.name).read()[-500:]))


def deploy_noop(url, code):
    api = benchlib.Api(url)
    api.put_function("noop", {"runtime": "provided", "handler": "bootstrap",
                              "max_concurrency": 64, "code": {"zip_base64": code}})
    api.close()


def drain(urls, store, timeout=900):
    """Waits until no event is left: on PostgreSQL the queue's table is the
    truth (events in the pool are no node's), on SQLite the node's own
    count."""
    deadline = time.monotonic() + timeout
    while True:
        if store:
            left = int(psql(store, "SELECT count(*) FROM events"))
        else:
            api = benchlib.Api(urls[0])
            st, _, body = api.request("GET", "/v1/functions/noop")
            api.close()
            q = json.loads(body)["async_queue"]
            left = q["depth"] + q["running"]
        if not left:
            return
        if time.monotonic() > deadline:
            raise RuntimeError("%d events did not drain in %d s" % (left, timeout))
        time.sleep(0.5)


def wrk_all(urls, load_cpu, duration, lua):
    """One wrk per node at once; the sum of their rates."""
    rates = [0.0] * len(urls)

    def run(i):
        rates[i] = wrk(urls[i] + "/v1/functions/noop/invoke", load_cpu, duration, lua)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(rates)


def cpu_ticks(cpu):
    """(idle, total) clock ticks of one CPU so far (/proc/stat; idle
    counts iowait too)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                t = [int(x) for x in line.split()[1:]]
                return t[3] + t[4], sum(t[:8])
    raise RuntimeError("cpu%s is not in /proc/stat" % cpu)


def measure(tag, urls, store, a, samples, runs, cgroups=(), idle_cpu=None):
    """Warm invokes and enqueues against urls, drained between runs. With
    the nodes' cgroups, also the CPUs they used meanwhile (CPU seconds
    over wall seconds, summed over the nodes), and their CPU
    milliseconds per thousand requests. With idle_cpu (the CPU a node is
    pinned to), the share of it left idle meanwhile."""
    wrk_all(urls, a.load_cpu, 2, POST_LUA)
    wrk_all(urls, a.load_cpu, 2, EVENT_LUA)
    drain(urls, store)
    for _ in range(runs):
        for kind, lua in (("invoke", POST_LUA), ("enqueue", EVENT_LUA)):
            cpu0, t0 = sum(cg.cpu_s() for cg in cgroups), time.monotonic()
            idle0 = cpu_ticks(idle_cpu) if idle_cpu is not None else None
            rps = wrk_all(urls, a.load_cpu, a.duration, lua)
            cpu, wall = sum(cg.cpu_s() for cg in cgroups) - cpu0, time.monotonic() - t0
            if idle0 is not None:
                idle1 = cpu_ticks(idle_cpu)
                samples.setdefault("%s_%s_server_idle" % (tag, kind), []).append(
                    (idle1[0] - idle0[0]) / max(1, idle1[1] - idle0[1]))
            samples.setdefault("%s_%s_rps" % (tag, kind), []).append(rps)
            if cgroups:
                samples.setdefault("%s_%s_cpus" % (tag, kind), []).append(cpu / wall)
                samples.setdefault("%s_%s_cpu_ms_per_1k" % (tag, kind), []).append(
                    1e6 * cpu / (rps * wall))
        drain(urls, store)
        line = "cluster: %s invoke %.1f enqueue %.1f" % (
            tag, samples[tag + "_invoke_rps"][-1], samples[tag + "_enqueue_rps"][-1])
        for key, what, fmt in (("server_idle", "server CPU idle", "%.3f"),
                               ("cpus", "node CPUs used", "%.2f")):
            if tag + "_invoke_" + key in samples:
                line += (" (%s: invoke " + fmt + " enqueue " + fmt + ")") % (
                    what, samples[tag + "_invoke_" + key][-1],
                    samples[tag + "_enqueue_" + key][-1])
        print(line, flush=True)


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--parts", default="store,scaling")
    a = ap.parse_args()
    parts = a.parts.split(",")
    tmp = tempfile.mkdtemp(prefix="mayfly-bench-cluster-")
    code = benchlib.zip_folder(os.path.join(ROOT, "examples", "noop-c"))
    res = {"samples": {}, "medians": {}}
    s = res["samples"]
    pg = Postgres(a.load_cpu)
    procs, cgroups = [], []
    try:
        # ---- the store: SQLite against PostgreSQL, one node each, in turn
        for _ in range(a.runs if "store" in parts else 0):
            for tag in ("sqlite", "pg"):
                store = pg.database() if tag == "pg" else None
                p, url = start_node(a.mayfly, tmp, tag, store, cpu=a.server_cpu)
                procs.append(p)
                deploy_noop(url, code)
                measure(tag, [url], store, a, s, 1, idle_cpu=a.server_cpu)
                benchlib.stop_server(p)
                procs.remove(p)
        # ---- scaling: one node at half a CPU, then three. The nodes'
        # cgroups are what limits them; the database is no node's, and
        # pinned to the load CPU beside three wrk it would be the limit
        # (it is a machine of its own in a cluster): it may use any CPU.
        if "scaling" in parts:
            pg.unpin()
        for n in (1, 3) if "scaling" in parts else ():
            store = pg.database()
            urls, node_cgroups = [], []
            for i in range(n):
                cg = Cgroup("node%d-of-%d" % (i, n))
                cgroups.append(cg)
                node_cgroups.append(cg)
                p, url = start_node(a.mayfly, tmp, "node%d-of-%d" % (i, n), store, cgroup=cg)
                procs.append(p)
                if i == 0:
                    deploy_noop(url, code)  # before the others start: each knows it
                urls.append(url)
            measure("nodes%d" % n, urls, store, a, s, a.runs, node_cgroups)
            for p in procs:
                benchlib.stop_server(p)
            procs = []
        m = res["medians"]
        for k, v in s.items():
            m[k] = median(v)
        if "store" in parts:
            m["pg_over_sqlite_enqueue"] = m["pg_enqueue_rps"] / m["sqlite_enqueue_rps"]
            m["pg_over_sqlite_invoke"] = m["pg_invoke_rps"] / m["sqlite_invoke_rps"]
        if "scaling" in parts:
            m["nodes3_over_nodes1_invoke"] = m["nodes3_invoke_rps"] / m["nodes1_invoke_rps"]
            m["nodes3_over_nodes1_enqueue"] = m["nodes3_enqueue_rps"] / m["nodes1_enqueue_rps"]
    finally:
        for p in procs:
            benchlib.stop_server(p)
        for cg in cgroups:
            cg.remove()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
