"""The gateway's resolver against a real upstream DNS server: the test runs
one on 127.0.0.1:53 and starts mayfly in a mount namespace of its own whose
/etc/resolv.conf names it, so the host's resolver (what the gateway asks
for names --egress-hosts does not give) is this server. Answers are cached
for their TTL; an answer pointing into an internal range is dropped unless
a CIDR rule names it (DNS rebinding)."""

import os
import socket
import struct
import threading
import time

import pytest

from conftest import deploy_py, invoke, unique

# name → (address, TTL); anything else is NXDOMAIN.
ZONE = {
    "long.test": ("127.0.0.1", 300),
    "short.test": ("127.0.0.1", 1),
    "rebind.test": ("10.0.0.5", 300),
    "named.test": ("10.0.0.6", 300),
}


class Dns:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.queries = []        # (name, qtype)
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def count(self, name, qtype=1):
        with self.lock:
            return sum(1 for q in self.queries if q == (name, qtype))

    def _serve(self):
        while True:
            try:
                msg, peer = self.sock.recvfrom(512)
            except OSError:
                return
            qid, flags = struct.unpack("!HH", msg[:4])
            off, labels = 12, []
            while msg[off]:
                labels.append(msg[off + 1:off + 1 + msg[off]].decode().lower())
                off += 1 + msg[off]
            qtype = struct.unpack("!H", msg[off + 1:off + 3])[0]
            question = msg[12:off + 5]
            name = ".".join(labels)
            with self.lock:
                self.queries.append((name, qtype))
            if name.startswith("slow"):
                # An upstream that takes its time, answering each on its own.
                threading.Timer(0.5, self._answer, (qid, question, qtype, name, peer)).start()
            else:
                self._answer(qid, question, qtype, name, peer)

    def _answer(self, qid, question, qtype, name, peer):
        if True:
            entry = ZONE.get(name) or (("127.0.0.1", 300) if name.startswith("slow") else None)
            answers = b""
            rcode = 3 if entry is None else 0
            if entry and qtype == 1:
                answers = struct.pack("!HHHIH", 0xc00c, 1, 1, entry[1], 4) + \
                    socket.inet_aton(entry[0])
            header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
            try:
                self.sock.sendto(header + question + answers, peer)
            except OSError:
                pass

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def dns_env(module_server_factory, tmp_path_factory):
    try:
        dns = Dns()
    except OSError as e:
        pytest.skip(f"127.0.0.1:53 is taken on this machine: {e}")
    tmp = tmp_path_factory.mktemp("dns")
    resolv = tmp / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:2 timeout:5\n")
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(64)
    srv = module_server_factory(start=False)
    plain = srv.command
    srv.command = lambda: ["unshare", "-m", "--propagation", "private", "sh", "-c",
                           'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                           str(resolv)] + plain()
    srv.start()
    yield srv, dns, echo.getsockname()[1]
    srv.stop()
    dns.close()
    echo.close()


RESOLVE = r"""
import socket
def handler(event, context):
    out = {}
    for name in event["names"]:
        try:
            out[name] = sorted({a[4][0] for a in socket.getaddrinfo(name, event["port"],
                                                                    socket.AF_INET)})
        except socket.gaierror as e:
            out[name] = "gaierror %d" % e.errno
    if event.get("connect"):
        try:
            socket.create_connection((event["connect"], event["port"]), timeout=20).close()
            out["connect"] = "ok"
        except OSError as e:
            out["connect"] = e.errno
    return out
"""


def resolve(srv, name, event):
    r = invoke(srv, name, event)
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    return r.json()


def test_answers_are_cached_for_their_ttl(dns_env):
    srv, dns, port = dns_env
    name = unique("dns")
    # The zone's names answer 127.0.0.1, internal: kept because a CIDR rule
    # names it.
    deploy_py(srv, name, RESOLVE, egress=[f"*.test:{port}", f"127.0.0.1:{port}"])
    before = dns.count("long.test")
    for _ in range(3):
        out = resolve(srv, name, {"names": ["long.test"], "port": port, "connect": "long.test"})
        assert out == {"long.test": ["127.0.0.1"], "connect": "ok"}, out
    # Three lookups within a 300 s TTL: the host's resolver was asked once.
    assert dns.count("long.test") - before == 1

    before = dns.count("short.test")
    resolve(srv, name, {"names": ["short.test"], "port": port})
    time.sleep(2.5)  # past its 1 s TTL, however slow the machine
    resolve(srv, name, {"names": ["short.test"], "port": port})
    assert dns.count("short.test") - before == 2


def test_an_unknown_allowed_name_is_nxdomain_and_a_denied_one_is_never_asked(dns_env):
    srv, dns, port = dns_env
    name = unique("dns")
    deploy_py(srv, name, RESOLVE, egress=[f"*.test:{port}"])
    out = resolve(srv, name, {"names": ["missing.test", "elsewhere.example"], "port": port})
    assert out["missing.test"].startswith("gaierror"), out
    assert out["elsewhere.example"] == "gaierror %d" % socket.EAI_NONAME, out
    assert dns.count("missing.test") >= 1
    assert dns.count("elsewhere.example") == 0, "a name no rule allows goes nowhere"


def test_an_answer_into_an_internal_range_is_dropped_unless_a_cidr_rule_names_it(dns_env):
    srv, dns, port = dns_env
    name = unique("dns")
    deploy_py(srv, name, RESOLVE, egress=[f"*.test:{port}", "10.0.0.6"])
    out = resolve(srv, name, {"names": ["rebind.test", "named.test"], "port": port})
    # rebind.test's 10.0.0.5 is withheld: the name answers with nothing.
    assert out["rebind.test"].startswith("gaierror"), out
    assert out["named.test"] == ["10.0.0.6"], out


MANY = r"""
import socket, threading
def handler(event, context):
    out = {}
    def one(name):
        try:
            socket.getaddrinfo(name, 80, socket.AF_INET)
            out[name] = "ok"
        except socket.gaierror as e:
            out[name] = e.errno
    ts = [threading.Thread(target=one, args=("slow%d.test" % i,)) for i in range(40)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out
"""


def test_a_flood_of_questions_is_bounded(dns_env):
    srv, dns, port = dns_env
    name = unique("dnsflood")
    deploy_py(srv, name, MANY, egress=["*.test:80", "127.0.0.1:80"], timeout_s=120)
    out = resolve(srv, name, {})
    assert len(out) == 40
    # At most 16 questions of one sandbox wait on the host's resolver at
    # once; the rest were told to try again (EAI_AGAIN) rather than queued.
    assert "ok" in out.values(), out
    assert socket.EAI_AGAIN in out.values(), out
    from conftest import metrics
    m = metrics(srv)
    assert m.get(("mayfly_egress_dns_queries_total",
                  frozenset({("function", name), ("answer", "servfail")})), 0) >= 1
