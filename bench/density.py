#!/usr/bin/python3
"""Density: memory per idle warm instance, with N idle instances.

Against a fresh server: deploy one function whose first call sleeps (so a
burst of concurrent calls finds no idle instance and each gets its own),
call it once, take the server's memory, fire N concurrent calls, wait until
every instance is idle, and measure:

- the server's own memory per instance: (VmRSS after - VmRSS before) /
  (instances after - instances before), and the same for Pss
  (/proc/PID/smaps_rollup);
- each sandbox's overhead beyond the runtime's own memory: the Pss of every
  process in the instance's cgroup but the runtime's (the sandbox's init,
  in practice), plus the cgroup's kernel memory (v1
  memory.kmem.usage_in_bytes, v2 memory.stat `kernel`). The median over
  instances is the figure; its parts and the runtime's own Pss and RSS are
  kept beside it.

Writes one JSON document to --out.
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402


def server_mem(pid):
    r = benchlib.rollup_kb(pid)
    return {"vmrss_kb": benchlib.vm_rss_kb(pid), "pss_kb": r.get("pss"), "rss_kb": r.get("rss")}


def burst(url, name, n, timeout):
    """n concurrent invokes, each on its own connection, released at once."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def one(i):
        api = benchlib.Api(url, timeout=timeout)
        try:
            api._connect()
            barrier.wait(30)
            st, h, body = api.invoke(name)
            results[i] = (st, h.get("x-mayfly-cold-start"), body[:200])
        except Exception as e:  # noqa: BLE001 - counted below
            results[i] = (0, None, repr(e).encode())
        finally:
            api.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def measure_instances(server_pid):
    per = []
    for iid, inst in sorted(benchlib.instance_cgroups(server_pid).items()):
        init, runtime = [], []
        for p in inst["procs"]:
            try:
                ppid = int(benchlib.proc_status(p)["PPid"])
                mem = benchlib.rollup_kb(p)
            except (OSError, KeyError, ValueError):
                continue  # gone meanwhile
            # The sandbox's PID 1 is the server's child; the runtime (and
            # anything it started) is below it.
            (init if ppid == server_pid else runtime).append(mem)
        kmem = benchlib.kernel_memory_bytes(inst["memory_dir"])
        if not init and not runtime:
            continue
        non_runtime_pss = sum(m["pss"] for m in init)
        overhead_kb = non_runtime_pss + (kmem or 0) / 1024
        per.append({
            "id": iid,
            "processes": len(init) + len(runtime),
            "init_pss_kb": non_runtime_pss,
            "init_rss_kb": sum(m["rss"] for m in init),
            "kmem_kb": None if kmem is None else kmem / 1024,
            "runtime_pss_kb": sum(m["pss"] for m in runtime),
            "runtime_rss_kb": sum(m["rss"] for m in runtime),
            "overhead_kb": overhead_kb,
        })
    return per


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--spec", required=True, help="JSON: runtime, handler, env")
    ap.add_argument("--code", required=True, help="folder with the function's code")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    pid = args.server_pid

    api = benchlib.Api(args.url)
    spec = json.loads(args.spec)
    spec.update({"memory_mb": 128, "timeout_s": 60, "max_concurrency": args.n,
                 "code": {"zip_base64": benchlib.zip_folder(args.code)}})
    out = {"n": args.n, "name": args.name}
    api.put_function(args.name, spec)
    st, h, body = api.invoke(args.name)
    if st != 200:
        raise SystemExit("density: first invoke: HTTP %d: %s" % (st, body[:200]))
    time.sleep(0.5)
    out["instances_before"] = len(benchlib.instance_cgroups(pid))
    out["server_before"] = server_mem(pid)

    t0 = time.monotonic()
    results = burst(args.url, args.name, args.n, timeout=120)
    out["burst_s"] = time.monotonic() - t0
    codes = {}
    for st, cold, _ in results:
        codes[str(st)] = codes.get(str(st), 0) + 1
    out["burst_status"] = codes
    out["burst_cold"] = sum(1 for r in results if r[1] == "1")
    out["burst_errors"] = [r[2].decode("utf-8", "replace") for r in results if r[0] != 200][:5]

    # Every call has answered, so every instance is idle (waiting for its
    # next event). Let the server settle: record batches, freed buffers.
    time.sleep(2)
    per = measure_instances(pid)
    out["server_after"] = server_mem(pid)
    out["instances_after"] = len(per)
    added = out["instances_after"] - out["instances_before"]
    out["instances_added"] = added
    if added > 0:
        b, a = out["server_before"], out["server_after"]
        out["server_kb_per_instance"] = (a["vmrss_kb"] - b["vmrss_kb"]) / added
        if a["pss_kb"] is not None and b["pss_kb"] is not None:
            out["server_pss_kb_per_instance"] = (a["pss_kb"] - b["pss_kb"]) / added
    if per:
        for k in ("overhead_kb", "init_pss_kb", "init_rss_kb", "kmem_kb", "runtime_pss_kb",
                  "runtime_rss_kb", "processes"):
            vals = [p[k] for p in per if p[k] is not None]
            out["median_" + k] = benchlib.median(vals)
    out["instances"] = per
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print("density %s: %d instances (+%d), %s; server %+.1f KiB RSS/instance; "
          "sandbox overhead median %.0f KiB (init Pss %.0f + kmem %s), runtime Pss %.0f KiB" % (
              args.name, out["instances_after"], added, codes,
              out.get("server_kb_per_instance", float("nan")),
              out.get("median_overhead_kb") or 0, out.get("median_init_pss_kb") or 0,
              out.get("median_kmem_kb"), out.get("median_runtime_pss_kb") or 0), flush=True)
    api.delete_function(args.name)
    return 0 if added > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
