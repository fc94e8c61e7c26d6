#!/usr/bin/python3
"""The metering row of bench/run.sh: what tenants, metering and a budget
cost a warm call (issue 17's target: ≥ 0.95×).

Two servers on the same CPU, side by side: one as a single user runs it
(development mode: no keys, the default tenant), the other with access keys
(the calls signed by a developer key of the tenant team-a, so the function
is that tenant's), a prices file, and a budget covering the function
(action block, an amount no run reaches: the invoke path checks it on
every call). Both meter every call and roll usage up with the records (that
is always on). The C no-op (examples/noop-c) on each, POST …/invoke from 32
connections (wrk -c32, the load on its own CPU), alternated, RUNS times
each, medians; the ratio is with / without.

  metering.py --mayfly BIN --server-cpu N --load-cpu N --runs R --duration S --out FILE

Writes JSON: every sample and the medians. Standard library, plus wrk.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from benchlib import median  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

KEY = ("AKIABENCHTEAMA00001", "bench-secret")
ADMIN = ("AKIABENCHADMIN00001", "admin-secret")
PRICES = {"currency": "EUR", "request_per_million": 0.2, "gb_second": 0.0000166667,
          "cpu_second": 0.00001, "egress_gb": 0.09, "kv_ops_per_million": 0.5}


def signed_lua(path):
    """post.lua with the developer key's bearer token."""
    with open(os.path.join(HERE, "post.lua")) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text + 'wrk.headers["Authorization"] = "Bearer %s:%s"\n' % KEY)
    return path


def setup(api, headers, budget):
    code = benchlib.zip_folder(os.path.join(ROOT, "examples", "noop-c"))
    spec = json.dumps({"runtime": "provided", "handler": "bootstrap", "max_concurrency": 64,
                       "code": {"zip_base64": code}}).encode()
    st, _, out = api.request("PUT", "/v1/functions/noop", spec, headers)
    if st not in (200, 201):
        raise RuntimeError("PUT noop: HTTP %d %r" % (st, out[:300]))
    if budget:
        body = json.dumps({"tenant": "team-a", "period": "month", "amount": 1e9,
                           "alert_at": [0.5, 0.8, 1.0], "action": "block"}).encode()
        st, _, out = api.request("PUT", "/v1/budgets/bench", body, headers)
        if st not in (200, 201):
            raise RuntimeError("PUT /v1/budgets/bench: HTTP %d %r" % (st, out[:300]))


def main():
    ap = benchlib.harness_parser()
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    tmp = benchlib.scratch("mayfly-bench-metering-")
    keys = os.path.join(tmp, "keys")
    with open(keys, "w") as f:
        f.write("%s %s team-a developer\n%s %s default admin\n" % (KEY + ADMIN))
    prices = os.path.join(tmp, "prices.json")
    with open(prices, "w") as f:
        json.dump(PRICES, f)
    post_lua = os.path.join(HERE, "post.lua")
    auth_lua = signed_lua(os.path.join(tmp, "signed.lua"))
    plain, plain_url = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "plain")
    metered, metered_url = None, None
    res = {"samples": {}, "medians": {}}
    s = res["samples"]
    try:
        metered, metered_url = benchlib.start_server(a.mayfly, a.server_cpu, tmp, "metered",
                                                     "--keys", keys, "--prices", prices)
        auth = {"Authorization": "Bearer %s:%s" % KEY}
        for url, headers, budget in ((plain_url, {}, False), (metered_url, auth, True)):
            api = benchlib.Api(url)
            setup(api, headers, budget)
            api.close()
        runs = (("plain_rps", plain_url, post_lua), ("metered_rps", metered_url, auth_lua))
        for _, url, lua in runs:
            benchlib.wrk(url + "/v1/functions/noop/invoke", a.load_cpu, 2, 32, lua)
        for _ in range(a.runs):
            for key, url, lua in runs:
                rps, _ = benchlib.wrk(url + "/v1/functions/noop/invoke", a.load_cpu, a.duration,
                                      32, lua)
                s.setdefault(key, []).append(rps)
            print("metering: " + ", ".join("%s %.1f" % (k, v[-1]) for k, v in s.items()),
                  flush=True)
        # The budget saw the calls: its spend moved (what it counts is
        # checked by the tests; here only that it was in place).
        api = benchlib.Api(metered_url)
        st, _, out = api.request("GET", "/v1/budgets/bench", None, auth)
        api.close()
        if st != 200:
            raise RuntimeError("GET /v1/budgets/bench: HTTP %d %r" % (st, out[:300]))
        res["budget"] = json.loads(out)
        m = res["medians"]
        for k, v in s.items():
            m[k] = median(v)
        m["metered_over_plain"] = m["metered_rps"] / m["plain_rps"]
    finally:
        benchlib.stop_server(plain)
        if metered:
            benchlib.stop_server(metered)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps(res["medians"], indent=1))


if __name__ == "__main__":
    main()
