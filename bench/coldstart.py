#!/usr/bin/python3
"""Cold starts, timed by the same harness as their baselines.

For each runtime, N times: create a function (cold-RT-I, the example's
no-op code), time one invoke from request to the last byte of the answer
(no instance exists, so it is a cold start) and delete the function. Each
start waits first until the server is at rest (its sandboxes unchanged and
its CPU idle for 30 ms): the last start's instance gone, any pool it keeps
refilled. The answer's headers break the start down:
X-Mayfly-Sandbox-Ms (sandbox creation), X-Mayfly-Init-Ms (sandbox creation
plus runtime init, up to the runtime's first poll for work) and
X-Mayfly-Duration-Ms (the first call itself); what is left of the total is
HTTP and scheduling.

Interleaved with the cold starts, the same process times the baselines
with os.posix_spawn + os.waitpid: /bin/true (against the sandboxed C
function), `python3 -c pass` and `node -e 0` (against the python3 and
nodejs functions, with the interpreters the sandboxes run), and `java -cp
hello.jar example.Hello` (against the java17 hello example: a JVM started
bare, with its default flags, running the same class's main). run.sh pins
this process, and so the baselines' children, to the load generator's CPU.

Writes one JSON document with every sample to --out.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

RUNTIMES = {
    # runtime: (example folder, baseline name, baseline argv)
    "c": ("noop-c", "posix_spawn /bin/true", ["/bin/true"]),
    "python": ("noop-python", "python3 -c pass", ["/usr/bin/python3", "-c", "pass"]),
    "node": ("noop-node", "node -e 0", ["/usr/bin/node", "-e", "0"]),
    # The hello example against the same class run by a bare JVM (the
    # host's `java`, Debian's JDK 17: what java17 runs on), with the
    # interfaces' jar its class implements; the paths are filled in from
    # --examples.
    "java": ("hello-java", "java -cp hello.jar example.Hello",
             ["/usr/bin/java", "-cp", "JARS", "example.Hello"]),
}

SPAWN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def spawn_once(argv):
    """Milliseconds from posix_spawn to waitpid returning. Its output goes
    to /dev/null (java's hello prints a line), as a sandbox's would go to
    the server rather than to this harness's terminal."""
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, SPAWN_ENV,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, st = os.waitpid(pid, 0)
    t1 = time.perf_counter_ns()
    if not os.WIFEXITED(st) or os.WEXITSTATUS(st) != 0:
        raise RuntimeError("%s ended with status %#x" % (" ".join(argv), st))
    return (t1 - t0) / 1e6


def fl(h, name):
    try:
        return float(h[name])
    except (KeyError, ValueError):
        return None


def cold_once(api, name, spec, server_pid):
    """Creates the function, times its first invoke, deletes it."""
    api.put_function(name, spec)
    # Nothing of an earlier start may still be winding down (an instance
    # draining, a pool of prepared sandboxes refilling).
    settled, waited = benchlib.wait_quiet(server_pid)
    t0 = time.perf_counter_ns()
    st, h, body = api.invoke(name)
    t1 = time.perf_counter_ns()
    api.delete_function(name)
    total = (t1 - t0) / 1e6
    sample = {
        "name": name,
        "status": st,
        "total_ms": total,
        "cold": h.get("x-mayfly-cold-start"),
        "sandbox_ms": fl(h, "x-mayfly-sandbox-ms"),
        "init_ms": fl(h, "x-mayfly-init-ms"),
        "duration_ms": fl(h, "x-mayfly-duration-ms"),
        "function_error": h.get("x-mayfly-function-error"),
        "settled": settled,
        "settle_wait_ms": waited * 1e3,
        "server_children": len(benchlib.children(server_pid)),
    }
    if st != 200 or sample["function_error"]:
        sample["error"] = "HTTP %d %s: %s" % (st, sample["function_error"] or "",
                                              body[:200].decode("utf-8", "replace"))
    elif sample["cold"] != "1":
        sample["error"] = "not a cold start (X-Mayfly-Cold-Start: %s)" % sample["cold"]
    elif None in (sample["sandbox_ms"], sample["init_ms"], sample["duration_ms"]):
        sample["error"] = "breakdown headers missing"
    return sample


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--examples", required=True, help="the repository's examples/ folder")
    ap.add_argument("--runtimes", default="c,python,node,java")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    api = benchlib.Api(args.url)
    result = {"n": args.n, "runtimes": {}, "baselines": {}}
    for rt in args.runtimes.split(","):
        folder, base_name, base_argv = RUNTIMES[rt]
        jars = "%s:%s" % (os.path.join(args.examples, folder, "hello.jar"),
                          os.path.join(args.examples, "..", "runtimes", "java", "lambda-api.jar"))
        base_argv = [jars if a == "JARS" else a for a in base_argv]
        entry = result["runtimes"][rt] = {"samples": [], "errors": [], "baseline": base_name}
        base = result["baselines"].setdefault(base_name, {"argv": base_argv, "samples_ms": [],
                                                           "errors": []})
        try:
            path = os.path.join(args.examples, folder)
            spec = benchlib.deploy_args(path)
            spec.update({"memory_mb": 128, "timeout_s": 30, "max_concurrency": 1,
                         "code": {"zip_base64": benchlib.zip_folder(path)}})
            for i in range(args.warmup):
                cold_once(api, "cold-%s-w%d" % (rt, i), spec, args.server_pid)
                spawn_once(base_argv)
            benchlib.wait_quiet(args.server_pid)
            # What the server keeps running at rest (a pool of prepared
            # sandboxes, say): each start finds that much ready.
            entry["settled_children"] = len(benchlib.children(args.server_pid))
            fails = 0
            for i in range(args.n):
                s = cold_once(api, "cold-%s-%d" % (rt, i), spec, args.server_pid)
                if "error" in s:
                    entry["errors"].append(s)
                    fails += 1
                    if fails >= 10 and not entry["samples"]:
                        break
                else:
                    entry["samples"].append(s)
                try:
                    base["samples_ms"].append(spawn_once(base_argv))
                except (OSError, RuntimeError) as e:
                    base["errors"].append(str(e))
        except Exception as e:  # the row fails, the others go on
            entry["errors"].append({"error": "%s: %s" % (type(e).__name__, e)})
            api.close()
        s = entry["samples"]
        entry["unsettled"] = sum(1 for x in s if not x["settled"])
        print("cold %-6s %d ok, %d failed, %d started before the server was at rest; "
              "median total %s ms; %s median %s ms" % (
                  rt, len(s), len(entry["errors"]), entry["unsettled"],
                  benchlib.median([x["total_ms"] for x in s]), base_name,
                  benchlib.median(base["samples_ms"])), flush=True)

    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    ok = any(v["samples"] for v in result["runtimes"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
