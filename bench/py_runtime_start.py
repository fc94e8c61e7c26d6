#!/usr/bin/python3
"""The Python runtime's own cold start, with and without `logging`.

Starts `python3 runtimes/python3/bootstrap.py` as mayfly does (outside a
sandbox, so only the interpreter and the runtime are timed), serves it one
event from a minimal Runtime API in this process, and times from spawn to
the function's result arriving. Functions:

  noop      returns {} and imports nothing
  logging   imports logging, sets INFO and logs one line per call

With --baseline DIR (another revision's runtimes/python3, e.g. from
`git worktree add`), each start of this runtime is followed by one of the
baseline, so both see the same machine; medians and their ratio are
printed. Standard library only; never part of `make test`.

    bench/py_runtime_start.py --baseline /path/to/old/runtimes/python3 -n 200
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time

# The interpreter the sandboxes run; it also compiles both runtimes, so
# neither pays for bytecode another Python version wrote.
PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(os.path.dirname(HERE), "runtimes", "python3")

FUNCTIONS = {
    "noop": "def handler(event, context):\n    return {}\n",
    "logging": ("import logging\n"
                "logger = logging.getLogger()\n"
                "logger.setLevel(logging.INFO)\n"
                "def handler(event, context):\n"
                "    logger.info('called')\n"
                "    return {}\n"),
}


class OneEventApi:
    """Answers the first GET .../next with an event, records when the
    result arrives, and answers the next poll with 500 so the runtime
    exits."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.done_ns = None
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        conn, _ = self.sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        served = False
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    conn.close()
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path = lines[0].split()[:2]
            length = 0
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            while len(buf) < length:
                buf += conn.recv(65536)
            buf = buf[length:]
            if method == b"GET" and not served:
                served = True
                body = b"{}"
                conn.sendall(b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r-1\r\n"
                             b"Lambda-Runtime-Deadline-Ms: %d\r\nContent-Length: %d\r\n\r\n%s"
                             % (int(time.time() * 1000) + 60000, len(body), body))
            elif method == b"POST":
                self.done_ns = time.perf_counter_ns()
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 500 Done\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                conn.close()
                return


def start_once(runtime_dir, task_root):
    api = OneEventApi()
    env = {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": ":UTC",
        "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": task_root, "_HANDLER": "app.handler",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}",
        "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    }
    t0 = time.perf_counter_ns()
    proc = subprocess.Popen([PYTHON, os.path.join(runtime_dir, "bootstrap.py")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.wait()
    api.thread.join(5)
    api.sock.close()
    if api.done_ns is None:
        raise RuntimeError(f"{runtime_dir}: no result (exit {proc.returncode})")
    return (api.done_ns - t0) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="another revision's runtimes/python3")
    ap.add_argument("-n", type=int, default=100, help="starts per runtime and function")
    args = ap.parse_args()

    runtimes = [("this", RUNTIME)]
    if args.baseline:
        runtimes.append(("baseline", os.path.abspath(args.baseline)))
    for _, d in runtimes:
        subprocess.run([PYTHON, "-m", "compileall", "-q", "-f", d], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for fname, src in FUNCTIONS.items():
            roots[fname] = os.path.join(tmp, fname)
            os.mkdir(roots[fname])
            with open(os.path.join(roots[fname], "app.py"), "w") as f:
                f.write(src)
        samples = {(r, f): [] for r, _ in runtimes for f in FUNCTIONS}
        for _ in range(args.n):
            for fname in FUNCTIONS:
                for rname, d in runtimes:
                    samples[(rname, fname)].append(start_once(d, roots[fname]))
    print(f"{'function':10} {'runtime':9} {'n':>5} {'median ms':>10} {'p90 ms':>8}")
    for (rname, fname), xs in samples.items():
        xs.sort()
        print(f"{fname:10} {rname:9} {len(xs):5} {statistics.median(xs):10.2f} "
              f"{xs[int(len(xs) * 0.9)]:8.2f}")
    if args.baseline:
        for fname in FUNCTIONS:
            a = statistics.median(samples[("this", fname)])
            b = statistics.median(samples[("baseline", fname)])
            print(f"{fname}: this / baseline = {a / b:.3f}")


if __name__ == "__main__":
    main()
