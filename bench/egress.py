#!/usr/bin/python3
"""The egress row of bench/run.sh: what the gateway costs a function.

  throughput  keep-alive HTTP requests per second from inside a warm
              function through the gateway, against the same client code
              run on the host as a plain process (the baseline), to the
              same local nginx; alternated, RUNS times each
  relay       the same two figures on a server with --egress-splice off
              (every byte through the server), alternated with the above
  bulk        MB/s of one 128 MiB download through the gateway, against
              the host's client
  per-call    warm calls per second of a function making one keep-alive
              request per call, against the same function answering
              without one
  connect     the added latency of a new connection: connect() alone and
              connect + first byte of an answer, medians of 200, in the
              function against the same code on the host (the host's client
              runs on the server's CPUs, where the sandboxes run too)
  cold        cold starts of a function without egress rules on a server
              with the gateway and on one started with --disable-egress,
              alternated, and of one with rules (the gateway's set-up)

  egress.py --mayfly BIN --server-cpu N --runs R --out FILE

Writes JSON: every sample and the medians. Standard library only.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402

CLIENT = r'''
import http.client, socket, time

def throughput(host, port, n):
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/"); c.getresponse().read()
    t = time.perf_counter()
    for _ in range(n):
        c.request("GET", "/")
        c.getresponse().read()
    dt = time.perf_counter() - t
    c.close()
    return n / dt

def connects(ip, port, n):
    conn, first = [], []
    req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for _ in range(n):
        t = time.perf_counter()
        s = socket.create_connection((ip, port))
        t1 = time.perf_counter()
        s.sendall(req)
        s.recv(1)
        t2 = time.perf_counter()
        s.close()
        conn.append((t1 - t) * 1e6)
        first.append((t2 - t) * 1e6)
    return conn, first

def bulk(host, port, path):
    c = http.client.HTTPConnection(host, port, timeout=60)
    t = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    n = 0
    while True:
        b = r.read(1 << 20)
        if not b:
            break
        n += len(b)
    dt = time.perf_counter() - t
    c.close()
    return n / dt / 1e6

KEEP = {}

def one_request(host, port):
    c = KEEP.get((host, port))
    if c is None:
        c = KEEP[(host, port)] = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/")
    c.getresponse().read()

def handler(event, context):
    kind = event["kind"]
    if kind == "throughput":
        return {"rps": throughput(event["host"], event["port"], event["n"])}
    if kind == "connect":
        c, f = connects(event["ip"], event["port"], event["n"])
        return {"connect_us": c, "first_byte_us": f}
    if kind == "bulk":
        return {"mb_s": bulk(event["host"], event["port"], event["path"])}
    if kind == "one":
        one_request(event["host"], event["port"])
    return {}

if __name__ == "__main__":
    import json, sys
    print(json.dumps(handler(json.loads(sys.argv[1]), None)))
'''

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 '{{}}'; }}
        location /big {{ root {dir}; }}
    }}
}}
"""


free_port = benchlib.free_port
zip_b64 = benchlib.zip_files


def start_server(mayfly, cpu, tmp, tag, *extra):
    # Idle instances stay for the whole run.
    return benchlib.start_server(mayfly, cpu, tmp, tag, "--keep-warm", "fixed", "--idle-timeout",
                                 "600", *extra)


def cpu_s(pid):
    """The server process's own CPU time (all its threads, not its
    children: the sandboxes), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


stop_server = benchlib.stop_server


def call(api, name, event):
    st, h, body = api.invoke(name, json.dumps(event).encode())
    if st != 200 or "x-mayfly-function-error" in h:
        raise RuntimeError("invoke %s: HTTP %d %s" % (name, st, body[:300]))
    return json.loads(body)


def on_host(client_path, event, cpu):
    # On the CPUs the function runs on: sandboxes are the server's children
    # and keep its affinity.
    out = subprocess.run(["taskset", "-c", str(cpu), "/usr/bin/python3", client_path,
                          json.dumps(event)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--connects", type=int, default=200)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--cold", type=int, default=30)
    a = ap.parse_args()
    res = {"samples": {}, "medians": {}}
    s = res["samples"]
    tmp = benchlib.scratch("mayfly-egress-bench-")
    nginx_port = free_port()
    with open(os.path.join(tmp, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(dir=tmp, port=nginx_port))
    nginx = subprocess.Popen(["taskset", "-c", str(a.load_cpu), "nginx", "-c",
                              os.path.join(tmp, "nginx.conf"), "-p", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hosts = os.path.join(tmp, "hosts")
    with open(hosts, "w") as f:
        f.write("127.0.0.1 up.test\n")
    client_path = os.path.join(tmp, "client.py")
    with open(client_path, "w") as f:
        f.write(CLIENT)
    servers = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", nginx_port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        p, url = start_server(a.mayfly, a.server_cpu, tmp, "egress", "--egress-hosts", hosts)
        servers.append(p)
        api = benchlib.Api(url)
        rp, rurl = start_server(a.mayfly, a.server_cpu, tmp, "relay", "--egress-hosts", hosts,
                                "--egress-splice", "off")
        servers.append(rp)
        rapi = benchlib.Api(rurl)
        code = zip_b64({"app.py": CLIENT})
        spec = {"runtime": "python3", "handler": "app.handler", "code": {"zip_base64": code},
                "memory_mb": 1769, "timeout_s": 300}
        api.put_function("via", dict(spec, egress=["up.test:%d" % nginx_port,
                                                   "127.0.0.1:%d" % nginx_port]))
        api.put_function("none", dict(spec, egress=[]))
        call(api, "via", {"kind": "one", "host": "up.test", "port": nginx_port})
        call(api, "none", {"kind": "none"})
        rapi.put_function("via", dict(spec, egress=["up.test:%d" % nginx_port]))
        call(rapi, "via", {"kind": "one", "host": "up.test", "port": nginx_port})

        # Throughput: alternated, gateway and host.
        ev = {"kind": "throughput", "host": "up.test", "port": nginx_port, "n": a.requests}
        host_ev = dict(ev, host="127.0.0.1")
        s["rps_gateway"], s["rps_host"], s["rps_relay"] = [], [], []
        s["server_cpu_us_per_req_gateway"], s["server_cpu_us_per_req_relay"] = [], []
        for _ in range(a.runs):
            for cl, proc, key in ((api, p, "gateway"), (rapi, rp, "relay")):
                c0 = cpu_s(proc.pid)
                s["rps_" + key].append(call(cl, "via", ev)["rps"])
                s["server_cpu_us_per_req_" + key].append(
                    (cpu_s(proc.pid) - c0) / a.requests * 1e6)
            s["rps_host"].append(on_host(client_path, host_ev, a.server_cpu)["rps"])

        # Bulk: one large download.
        with open(os.path.join(tmp, "big"), "wb") as f:
            f.write(os.urandom(128 << 20))
        os.chmod(tmp, 0o755)   # nginx's worker reads it as nobody
        os.chmod(os.path.join(tmp, "big"), 0o644)
        ev = {"kind": "bulk", "host": "up.test", "port": nginx_port, "path": "/big"}
        s["bulk_mb_s_gateway"], s["bulk_mb_s_relay"], s["bulk_mb_s_host"] = [], [], []
        for _ in range(a.runs):
            s["bulk_mb_s_gateway"].append(call(api, "via", ev)["mb_s"])
            s["bulk_mb_s_relay"].append(call(rapi, "via", ev)["mb_s"])
            s["bulk_mb_s_host"].append(
                on_host(client_path, dict(ev, host="127.0.0.1"), a.server_cpu)["mb_s"])

        # New connections.
        ev = {"kind": "connect", "ip": "127.0.0.1", "port": nginx_port, "n": a.connects}
        for k in ("connect_us", "first_byte_us"):
            s[k + "_gateway"], s[k + "_host"] = [], []
        for _ in range(a.runs):
            g = call(api, "via", ev)
            h = on_host(client_path, ev, a.server_cpu)
            for k in ("connect_us", "first_byte_us"):
                s[k + "_gateway"].append(median(g[k]))
                s[k + "_host"].append(median(h[k]))

        # Warm calls with one keep-alive request each, and without.
        s["calls_per_s_request"], s["calls_per_s_none"] = [], []
        s["calls_per_s_request_relay"] = []
        one = json.dumps({"kind": "one", "host": "up.test", "port": nginx_port}).encode()
        for _ in range(a.runs):
            for cl, name, key, body in ((api, "via", "calls_per_s_request", one),
                                        (rapi, "via", "calls_per_s_request_relay", one),
                                        (api, "none", "calls_per_s_none", b'{"kind":"none"}')):
                t = time.perf_counter()
                for _ in range(a.calls):
                    st, _, _ = cl.invoke(name, body)
                    assert st == 200
                s[key].append(a.calls / (time.perf_counter() - t))
        api.close()
        rapi.close()
        stop_server(servers.pop())
        stop_server(servers.pop())

        # Cold starts of a function without rules: gateway on and off.
        on, url_on = start_server(a.mayfly, a.server_cpu, tmp, "cold-on")
        servers.append(on)
        off, url_off = start_server(a.mayfly, a.server_cpu, tmp, "cold-off", "--disable-egress")
        servers.append(off)
        s["cold_ms_on"], s["cold_ms_off"], s["cold_ms_rules"] = [], [], []
        pair = [(url_on, "cold_ms_on"), (url_off, "cold_ms_off"), (url_on, "cold_ms_rules")]
        for i in range(a.cold):
            # Alternated, the order swapped each round, each start once both
            # servers are at rest (the last instance gone, pools refilled).
            for url, key in (pair if i % 2 == 0 else pair[::-1]):
                for p in (on, off):
                    benchlib.wait_quiet(p.pid)
                api = benchlib.Api(url)
                name = "%s-%d" % (key.replace("_", "-"), i)
                # The third: a function with rules, whose instance gets the
                # gateway's set-up on its cold start.
                rules = ["up.test:%d" % nginx_port] if key == "cold_ms_rules" else []
                api.put_function(name, dict(spec, egress=rules, memory_mb=128))
                t = time.perf_counter()
                st, _, body = api.invoke(name, b'{"kind":"none"}')
                s[key].append((time.perf_counter() - t) * 1000)
                assert st == 200, body
                api.delete_function(name)
                api.close()
    finally:
        for p in servers:
            stop_server(p)
        nginx.terminate()
        nginx.wait()

    m = res["medians"]
    for k, v in s.items():
        m[k] = median(v)
    m["rps_ratio"] = m["rps_gateway"] / m["rps_host"]
    m["rps_ratio_relay"] = m["rps_relay"] / m["rps_host"]
    m["bulk_ratio"] = m["bulk_mb_s_gateway"] / m["bulk_mb_s_host"]
    m["bulk_ratio_relay"] = m["bulk_mb_s_relay"] / m["bulk_mb_s_host"]
    m["connect_added_us"] = m["connect_us_gateway"] - m["connect_us_host"]
    m["first_byte_added_us"] = m["first_byte_us_gateway"] - m["first_byte_us_host"]
    m["calls_ratio"] = m["calls_per_s_request"] / m["calls_per_s_none"]
    # The target's reading: calls making their one request through the
    # gateway, against the same calls were the request as cheap as from a
    # host process (the call without it, plus the host's time per request).
    direct_call_s = 1 / m["calls_per_s_none"] + 1 / m["rps_host"]
    m["calls_ratio_vs_direct"] = m["calls_per_s_request"] * direct_call_s
    m["calls_ratio_vs_direct_relay"] = m["calls_per_s_request_relay"] * direct_call_s
    m["cold_ratio"] = m["cold_ms_on"] / m["cold_ms_off"]
    m["cold_setup_ms"] = m["cold_ms_rules"] - m["cold_ms_on"]
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(m, indent=1))


if __name__ == "__main__":
    main()
