"""Finding calls: GET /v1/invocations and /v1/functions/{name}/invocations
filtered by status, start time (since/until), cold or warm start, duration
and error type, paged newest first with a cursor; and `mayfly invocations`
with the same filters as flags.

A known set of calls is made once for the module. What each filter must
give is worked out from the calls' own records (their start, duration and
cold_start), never from the clock of this test."""

import base64
import calendar
import json
import shlex
from datetime import datetime, timezone

import pytest
import requests

from conftest import assert_error, deploy_py, get_record, invoke, unique

FLEX = """
import time

class AlphaError(Exception):
    pass

class BetaError(Exception):
    pass

def handler(event, context):
    if event.get("sleep_ms"):
        time.sleep(event["sleep_ms"] / 1000)
    if event.get("raise") == "alpha":
        raise AlphaError("alpha failed")
    if event.get("raise") == "beta":
        raise BetaError("beta failed")
    return event.get("tag")
"""

SLOW_MS = 300


def start_ms(rec):
    """A record's start ("2026-12-05T10:00:00.123Z") as ms since the epoch."""
    t = datetime.fromisoformat(rec["start"].replace("Z", "+00:00"))
    return calendar.timegm(t.utctimetuple()) * 1000 + t.microsecond // 1000


def iso(ms, offset_min=0):
    """ms since the epoch as RFC 3339, at a UTC offset of offset_min."""
    shifted = ms + offset_min * 60000
    secs, frac = divmod(shifted, 1000)
    base = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if offset_min == 0:
        return f"{base}.{frac:03d}Z"
    sign = "+" if offset_min > 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{base}.{frac:03d}{sign}{h:02d}:{m:02d}"


class Calls:
    """The module's calls, oldest first, each with its record."""

    def __init__(self, srv):
        self.srv = srv
        self.fa = unique("find-a")
        self.fb = unique("find-b")
        self.items = []  # dicts: rid, function, plan, rec
        self.cold_planned = []

    def deploy(self, name, **settings):
        deploy_py(self.srv, name, FLEX, **settings)

    def call(self, name, cold=False, **event):
        r = invoke(self.srv, name, event)
        assert r.status_code == 200, r.text
        rid = r.headers["X-Mayfly-Request-Id"]
        self.items.append({"rid": rid, "function": name, "plan": event})
        if cold:
            self.cold_planned.append(rid)
        return rid

    def load_records(self):
        for c in self.items:
            c["rec"] = get_record(self.srv, c["rid"])
            c["start_ms"] = start_ms(c["rec"])

    def expect(self, function=None, pred=lambda rec: True):
        """The request ids of the calls pred keeps, newest first."""
        return [c["rid"] for c in reversed(self.items)
                if (function is None or c["function"] == function) and pred(c["rec"])]


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


@pytest.fixture(scope="module")
def calls(srv):
    c = Calls(srv)
    c.deploy(c.fa)
    c.call(c.fa, cold=True, tag=0)
    c.call(c.fa, tag=1)
    c.call(c.fa, **{"raise": "alpha"})
    c.call(c.fa, sleep_ms=SLOW_MS, tag=3)
    c.call(c.fa, **{"raise": "beta"})
    # A new version: its first call needs a new instance.
    c.deploy(c.fa, env={"GENERATION": "2"})
    c.call(c.fa, cold=True, tag=5)
    c.call(c.fa, sleep_ms=SLOW_MS, **{"raise": "alpha"})
    c.call(c.fa, tag=7)
    c.deploy(c.fb)
    c.call(c.fb, cold=True, **{"raise": "beta"})
    c.call(c.fb, tag=9)
    c.load_records()
    return c


def listing(srv, name=None, everywhere=False, **params):
    """One page: (request ids, next) from the function's listing, or with
    name=None or everywhere=True from GET /v1/invocations."""
    if name is None or everywhere:
        url = f"{srv.url}/v1/invocations"
        if name is not None:
            params["function"] = name
    else:
        url = f"{srv.url}/v1/functions/{name}/invocations"
    r = requests.get(url, params=params, timeout=30)
    assert r.status_code == 200, f"{url} {params}: HTTP {r.status_code} {r.text}"
    doc = r.json()
    assert set(doc) == {"invocations", "next"}, doc
    assert doc["next"] is None or (isinstance(doc["next"], str) and doc["next"]), doc
    return [x["request_id"] for x in doc["invocations"]], doc["next"]


def find(srv, name=None, **params):
    """Every record a filter selects, through one big page, checked to be
    what GET /v1/invocations?function= says too."""
    ids, nxt = listing(srv, name, limit=1000, **params)
    assert nxt is None, "a page of 1000 said there is more"
    if name is not None:
        assert listing(srv, name, everywhere=True, limit=1000, **params) == (ids, None)
    return ids


def walk(srv, name, limit, **params):
    """Every page of a listing at limit a page, following next; asserts
    each full page says next and the last one does not."""
    pages, cursor = [], None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        ids, cursor = listing(srv, name, limit=limit, **params, **extra)
        pages.append(ids)
        assert len(ids) <= limit
        if cursor is None:
            return pages
        assert len(ids) == limit, (pages, cursor)
        assert len(pages) < 100, "the cursor does not move on"


# ---------------------------------------------------------------- the calls


def test_the_calls_are_as_planned(calls):
    """What the expectations below rest on: each call did what it was asked,
    the first call of each version started cold, and starts only grow."""
    for c in calls.items:
        rec, plan = c["rec"], c["plan"]
        assert rec["function"] == c["function"]
        if "raise" in plan:
            assert rec["status"] == "error", rec
            assert rec["error_type"] == {"alpha": "AlphaError", "beta": "BetaError"}[plan["raise"]]
        else:
            assert rec["status"] == "success", rec
            assert rec["error_type"] is None, rec
        if plan.get("sleep_ms"):
            assert rec["duration_ms"] >= SLOW_MS, rec
        if c["rid"] in calls.cold_planned:
            assert rec["cold_start"] is True, rec
    starts = [c["start_ms"] for c in calls.items]
    assert starts == sorted(starts), starts
    warm = calls.expect(calls.fa, lambda r: not r["cold_start"])
    assert warm, "no warm call to tell apart from the cold ones"


# ---------------------------------------------------------------- filters


def test_no_filter_lists_every_call_newest_first(srv, calls):
    assert find(srv, calls.fa) == calls.expect(calls.fa)
    assert find(srv, calls.fb) == calls.expect(calls.fb)
    assert find(srv) == calls.expect()


def test_status(srv, calls):
    for status in ("success", "error"):
        want = calls.expect(calls.fa, lambda r: r["status"] == status)
        assert find(srv, calls.fa, status=status) == want
    assert len(find(srv, calls.fa, status="error")) == 3
    assert find(srv, calls.fa, status="timeout") == []
    assert find(srv, status="error") == calls.expect(pred=lambda r: r["status"] == "error")


def test_error_type(srv, calls):
    alpha = find(srv, calls.fa, error_type="AlphaError")
    assert alpha == calls.expect(calls.fa, lambda r: r["error_type"] == "AlphaError")
    assert len(alpha) == 2
    assert len(find(srv, calls.fa, error_type="BetaError")) == 1
    # Across functions, and an exact match only.
    assert find(srv, error_type="BetaError") == calls.expect(
        pred=lambda r: r["error_type"] == "BetaError")
    assert len(find(srv, error_type="BetaError")) == 2
    assert find(srv, error_type="Beta") == []
    assert find(srv, error_type="betaerror") == []


def test_cold_and_warm(srv, calls):
    cold = find(srv, calls.fa, cold="1")
    assert cold == calls.expect(calls.fa, lambda r: r["cold_start"])
    assert set(calls.cold_planned) & set(calls.expect(calls.fa)) <= set(cold)
    assert len(cold) >= 2
    warm = find(srv, calls.fa, cold="0")
    assert warm == calls.expect(calls.fa, lambda r: not r["cold_start"])
    assert sorted(cold + warm) == sorted(calls.expect(calls.fa))
    assert find(srv, cold="1") == calls.expect(pred=lambda r: r["cold_start"])


def test_min_duration(srv, calls):
    slow = find(srv, calls.fa, min_duration_ms=SLOW_MS)
    assert slow == calls.expect(calls.fa, lambda r: r["duration_ms"] >= SLOW_MS)
    planned = [c["rid"] for c in calls.items if c["plan"].get("sleep_ms")]
    assert set(planned) <= set(slow)
    # The bound is inclusive, to the record's own fraction of a ms.
    d = max(c["rec"]["duration_ms"] for c in calls.items if c["function"] == calls.fa)
    top = find(srv, calls.fa, min_duration_ms=repr(float(d)))
    assert top == calls.expect(calls.fa, lambda r: r["duration_ms"] >= d)
    assert len(top) >= 1
    assert find(srv, calls.fa, min_duration_ms=d + 1) == []
    assert find(srv, calls.fa, min_duration_ms="0") == calls.expect(calls.fa)
    assert find(srv, calls.fa, min_duration_ms="0.5") == calls.expect(
        calls.fa, lambda r: r["duration_ms"] >= 0.5)


def test_since_and_until_bound_by_the_records_own_starts(srv, calls):
    fa = [c for c in calls.items if c["function"] == calls.fa]
    lo, hi = fa[2]["start_ms"], fa[5]["start_ms"]
    between = calls.expect(calls.fa, lambda r: lo <= start_ms(r) <= hi)
    assert fa[2]["rid"] in between and fa[5]["rid"] in between  # both ends count
    assert len(between) >= 4
    # As a record shows its start, in epoch ms, and at another offset.
    for since, until in ((fa[2]["rec"]["start"], fa[5]["rec"]["start"]),
                         (str(lo), str(hi)),
                         (iso(lo, 120), iso(hi, -330))):
        assert find(srv, calls.fa, since=since, until=until) == between, (since, until)
    assert find(srv, calls.fa, since=lo) == calls.expect(calls.fa, lambda r: start_ms(r) >= lo)
    assert find(srv, calls.fa, until=hi) == calls.expect(calls.fa, lambda r: start_ms(r) <= hi)
    # A window of one millisecond, and one before everything.
    assert find(srv, calls.fa, since=lo, until=lo) == calls.expect(
        calls.fa, lambda r: start_ms(r) == lo)
    first = calls.items[0]["start_ms"]
    assert find(srv, until=first - 1) == []
    assert find(srv, since=iso(first)) == calls.expect()
    # Whole seconds without a fraction parse too.
    whole = iso(lo - lo % 1000).replace(".000Z", "Z")
    assert find(srv, calls.fa, since=whole) == calls.expect(
        calls.fa, lambda r: start_ms(r) >= lo - lo % 1000)


def test_filters_combine(srv, calls):
    fa = calls.fa
    assert find(srv, fa, status="error", min_duration_ms=SLOW_MS) == calls.expect(
        fa, lambda r: r["status"] == "error" and r["duration_ms"] >= SLOW_MS)
    assert len(find(srv, fa, status="error", min_duration_ms=SLOW_MS)) >= 1
    assert find(srv, fa, status="success", cold="0") == calls.expect(
        fa, lambda r: r["status"] == "success" and not r["cold_start"])
    lo = [c for c in calls.items if c["function"] == fa][3]["start_ms"]
    assert find(srv, fa, error_type="AlphaError", since=lo) == calls.expect(
        fa, lambda r: r["error_type"] == "AlphaError" and start_ms(r) >= lo)
    assert len(find(srv, fa, error_type="AlphaError", since=lo)) == 1
    assert find(srv, error_type="BetaError", cold="1") == calls.expect(
        pred=lambda r: r["error_type"] == "BetaError" and r["cold_start"])
    assert find(srv, fa, status="success", error_type="AlphaError") == []


def test_an_empty_value_is_no_condition(srv, calls):
    assert find(srv, calls.fa, status="", since="", until="", cold="", min_duration_ms="",
                error_type="", cursor="") == calls.expect(calls.fa)


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize("limit", [1, 2, 3, 8, 9])
def test_paging_walks_every_call_once(srv, calls, limit):
    want = calls.expect(calls.fa)
    assert len(want) == 8
    pages = walk(srv, calls.fa, limit)
    assert [rid for page in pages for rid in page] == want
    # Exactly as many pages as needed: no empty page at the end.
    assert len(pages) == -(-len(want) // limit)
    everywhere = walk(srv, None, limit)
    assert [rid for page in everywhere for rid in page] == calls.expect()


def test_paging_by_two_with_filters(srv, calls):
    pages = walk(srv, calls.fa, 2)
    assert [len(p) for p in pages] == [2, 2, 2, 2]
    for params in ({"status": "success"}, {"status": "error"}, {"cold": "0"},
                   {"error_type": "AlphaError"}, {"since": calls.items[2]["start_ms"]}):
        got = [rid for page in walk(srv, calls.fa, 2, **params) for rid in page]
        assert got == find(srv, calls.fa, **params), params
        assert len(set(got)) == len(got)
    got = [rid for page in walk(srv, None, 1, error_type="BetaError") for rid in page]
    assert got == calls.expect(pred=lambda r: r["error_type"] == "BetaError")


def test_a_cursor_continues_after_its_record_whatever_came_since(server):
    """A new call after a page was read does not shift the next page. (A
    server of its own: the module's listings everywhere stay as planned.)"""
    srv = server()
    name = unique("find-late")
    deploy_py(srv, name, FLEX)
    first = [invoke(srv, name, {"tag": i}).headers["X-Mayfly-Request-Id"] for i in range(3)]
    for rid in first:
        get_record(srv, rid)
    page, cursor = listing(srv, name, limit=2)
    assert page == first[::-1][:2] and cursor
    late = invoke(srv, name, {"tag": "late"}).headers["X-Mayfly-Request-Id"]
    get_record(srv, late)
    page, nxt = listing(srv, name, limit=2, cursor=cursor)
    assert page == [first[0]] and nxt is None
    assert listing(srv, name, limit=10)[0] == [late] + first[::-1]


# ---------------------------------------------------------------- bad input


def b64url(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD = [
    ("since", "yesterday"),
    ("since", "2026-13-01T00:00:00Z"),
    ("since", "2026-02-30T00:00:00Z"),
    ("since", "2026-12-05T10:00:00"),
    ("since", "2026-12-05"),
    ("since", "-5"),
    ("since", "12abc"),
    ("since", "1e12"),
    ("until", "tomorrow"),
    ("until", "2026-12-05T10:00:00+0200"),
    ("until", "99999999999999999999"),
    ("cold", "2"),
    ("cold", "yes"),
    ("cold", "true"),
    ("min_duration_ms", "-1"),
    ("min_duration_ms", "abc"),
    ("min_duration_ms", "inf"),
    ("min_duration_ms", "nan"),
    ("min_duration_ms", "1e3"),
    ("min_duration_ms", "0x10"),
    ("min_duration_ms", "5."),
    ("min_duration_ms", ".5"),
    ("error_type", "E" * 129),
    ("error_type", "Bad\x01Type"),
    ("error_type", "Tab\tType"),
    ("error_type", "Ünicode"),
    ("cursor", "not a cursor!"),
    ("cursor", "AAAA"),
    ("cursor", b64url(b"12345")),
    ("cursor", b64url(b"12.0")),
    ("cursor", b64url(b"-12.3")),
    ("cursor", b64url(b"12.3.4")),
    ("cursor", b64url(b"12.x")),
    ("cursor", b64url(b"1" * 19 + b".1")),
    ("cursor", "A" * 65),
    ("cursor", "QQ=="),
    ("status", "later"),
    ("limit", "0"),
    ("limit", "1001"),
]


@pytest.mark.parametrize("param,value", BAD, ids=[f"{p}={v[:20]!r}" for p, v in BAD])
def test_a_bad_parameter_is_400_naming_it(srv, calls, param, value):
    for url in (f"{srv.url}/v1/functions/{calls.fa}/invocations",
                f"{srv.url}/v1/invocations"):
        r = requests.get(url, params={param: value}, timeout=30)
        msg = assert_error(r, 400, "bad_request", param)
        assert msg.lower().startswith(param + ":"), msg


def test_until_before_since_is_400(srv, calls):
    r = requests.get(f"{srv.url}/v1/functions/{calls.fa}/invocations",
                     params={"since": "2000", "until": "1999"}, timeout=30)
    assert_error(r, 400, "bad_request", "until", "since")


def test_a_cursor_of_ours_is_accepted_but_not_a_made_up_one(srv, calls):
    _, cursor = listing(srv, calls.fa, limit=1)
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    start, rowid = raw.split(".")
    assert int(start) == calls.items[-3]["start_ms"] and int(rowid) >= 1, raw
    # A cursor is a position: one made at a start with no record is fine.
    ids, _ = listing(srv, calls.fa, limit=1000, cursor=b64url(f"{start}.{10**17}".encode()))
    assert ids == calls.expect(calls.fa, lambda r: start_ms(r) <= int(start))


# ---------------------------------------------------------------- the CLI


def cli_ids(srv, name, *flags):
    p = srv.cli("invocations", name, *flags, "--json")
    assert p.returncode == 0, p.stderr
    return [x["request_id"] for x in json.loads(p.stdout)["invocations"]]


def test_cli_filters_match_the_api(srv, calls):
    fa = calls.fa
    lo = [c for c in calls.items if c["function"] == fa][2]["rec"]["start"]
    hi = [c for c in calls.items if c["function"] == fa][5]["start_ms"]
    cases = [
        ((), {}),
        (("--status", "error"), {"status": "error"}),
        (("--error-type", "AlphaError"), {"error_type": "AlphaError"}),
        (("--cold",), {"cold": "1"}),
        (("--warm",), {"cold": "0"}),
        (("--min-duration", str(SLOW_MS)), {"min_duration_ms": SLOW_MS}),
        (("--since", lo, "--until", str(hi)), {"since": lo, "until": hi}),
        (("--status", "success", "--warm", "--since", lo),
         {"status": "success", "cold": "0", "since": lo}),
    ]
    for flags, params in cases:
        assert cli_ids(srv, fa, *flags) == find(srv, fa, **params), flags


def test_cli_table_pages_with_a_next_line(srv, calls):
    fa = calls.fa
    cmd = ["invocations", fa, "--limit", "3", "--warm"]
    seen, pages = [], 0
    while cmd:
        p = srv.cli(*cmd)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.splitlines()
        assert lines[0].split()[0] == "REQUEST_ID", p.stdout
        # The command for the next page is the last line, on stderr so that
        # stdout stays the table.
        cmd = None
        if p.stderr:
            last = p.stderr.splitlines()[-1]
            assert last.startswith("next: "), p.stderr
            argv = shlex.split(last[len("next: "):])
            assert argv[:2] == ["mayfly", "invocations"], last
            assert "--warm" in argv and "--cursor" in argv, last
            assert argv[argv.index("--limit") + 1] == "3", last
            cmd = argv[1:]
        rows = [line.split() for line in lines[1:]]
        assert all(row[5] == "no" for row in rows), p.stdout
        seen += [row[0] for row in rows]
        pages += 1
        assert pages < 50
    assert seen == find(srv, fa, cold="0")
    assert pages == -(-len(seen) // 3)


def test_cli_cursor_flag_and_json_next(srv, calls):
    fa = calls.fa
    p = srv.cli("invocations", fa, "--limit", "5", "--json")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert len(doc["invocations"]) == 5 and doc["next"]
    p = srv.cli("invocations", fa, "--limit", "5", "--cursor", doc["next"], "--json")
    assert p.returncode == 0, p.stderr
    rest = json.loads(p.stdout)
    assert rest["next"] is None
    ids = [x["request_id"] for x in doc["invocations"] + rest["invocations"]]
    assert ids == calls.expect(fa)
    # The last page's table has no next line.
    p = srv.cli("invocations", fa, "--limit", "5", "--cursor", doc["next"])
    assert p.returncode == 0, p.stderr
    assert "next:" not in p.stdout + p.stderr
    assert [line.split()[0] for line in p.stdout.splitlines()[1:]] == ids[5:]


@pytest.mark.parametrize("flags,word", [
    (("--since", "yesterday"), "since"),
    (("--until", "soon"), "until"),
    (("--min-duration", "-3"), "min_duration_ms"),
    (("--error-type", "E" * 200), "error_type"),
    (("--cursor", "bogus!"), "cursor"),
])
def test_cli_bad_values_are_the_servers_400(srv, calls, flags, word):
    p = srv.cli("invocations", calls.fa, *flags)
    assert p.returncode == 1, p
    assert "HTTP 400" in p.stderr and word in p.stderr, p.stderr


def test_cli_obviously_broken_usage_exits_2(srv, calls):
    p = srv.cli("invocations", calls.fa, "--cold", "--warm")
    assert p.returncode == 2 and "--cold and --warm" in p.stderr, p
    p = srv.cli("invocations", calls.fa, "--since")
    assert p.returncode == 2, p
    p = srv.cli("invocations", "--help")
    assert p.returncode == 0
    for flag in ("--since", "--until", "--cold", "--warm", "--min-duration", "--error-type",
                 "--cursor"):
        assert flag in p.stdout, flag
