#!/usr/bin/python3
"""The machine a benchmark ran on, and how quiet it was.

  machine.py info                      JSON: CPUs, model, kernel, memory, cgroups
  machine.py snapshot FILE             saves every process's CPU time so far
  machine.py load FILE --self PID      JSON: CPU time other processes (not
                                       PID's descendants) used since the snapshot

Figures measured on a machine that something else keeps busy are not
comparable: the report says how much CPU other processes took meanwhile.
"""
import argparse
import json
import os
import platform
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def info():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cgroup = "v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"
    return {
        "nproc": os.cpu_count(),
        "model": model,
        "kernel": platform.release(),
        "mem_gib": round(mem_kb / 1048576, 1),
        "cgroup": cgroup,
        "debian": open("/etc/debian_version").read().strip()
        if os.path.exists("/etc/debian_version") else "",
    }


def processes():
    """{pid: (start time, ppid, comm, cpu ticks incl. reaped children, kthread)}"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                text = f.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        f = text[text.rindex(")") + 2:].split()
        # fields from 3 (state): ppid=4, flags=9, utime=14, stime=15,
        # cutime=16, cstime=17, starttime=22
        ppid, flags = int(f[1]), int(f[6])
        ticks = int(f[11]) + int(f[12])
        # What reaped children used counts for their parent, except for
        # PID 1: it reaps every orphan, the suite's own too (fcgiwrap's
        # children outlive their master for a moment), so its share of
        # them is nobody's in particular.
        if int(d) != 1:
            ticks += int(f[13]) + int(f[14])
        kthread = bool(flags & 0x00200000) or ppid == 2 or int(d) == 2
        out[int(d)] = (int(f[19]), ppid, comm, ticks, kthread)
    return out


def descendants(procs, root):
    kids = {}
    for pid, p in procs.items():
        kids.setdefault(p[1], []).append(pid)
    seen, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += kids.get(pid, [])
    return seen


def snapshot(path):
    procs = processes()
    with open(path, "w") as f:
        json.dump({"time": time.monotonic(), "procs": {str(k): v for k, v in procs.items()}}, f)


def load(path, self_pid):
    with open(path) as f:
        snap = json.load(f)
    before = {int(k): v for k, v in snap["procs"].items()}
    now = processes()
    elapsed = time.monotonic() - snap["time"]
    ours = descendants(now, self_pid)
    # The ancestors of the suite (make, a shell) did nothing meanwhile but
    # wait for it.
    pid = self_pid
    while pid in now and pid > 1:
        ours.add(pid)
        pid = now[pid][1]
    user, kernel, by_comm = 0, 0, {}
    for pid, (start, _, comm, ticks, kthread) in now.items():
        if pid in ours:
            continue
        old = before.get(pid)
        used = ticks - old[3] if old and old[0] == start else ticks
        if used <= 0:
            continue
        if kthread:
            kernel += used
        else:
            user += used
            by_comm[comm] = by_comm.get(comm, 0) + used
    top = sorted(by_comm.items(), key=lambda kv: -kv[1])[:5]
    return {
        "elapsed_s": round(elapsed, 1),
        "other_cpu_s": round(user / HZ, 1),
        "kernel_threads_cpu_s": round(kernel / HZ, 1),
        "other_top": [[c, round(t / HZ, 1)] for c, t in top],
    }


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info")
    s = sub.add_parser("snapshot")
    s.add_argument("file")
    ld = sub.add_parser("load")
    ld.add_argument("file")
    ld.add_argument("--self", type=int, required=True)
    args = ap.parse_args()
    if args.cmd == "info":
        print(json.dumps(info()))
    elif args.cmd == "snapshot":
        snapshot(args.file)
    else:
        print(json.dumps(load(args.file, args.self)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
