"""The console's other pages in a real browser (the fixtures and helpers of
test_console_ui.py, headless Chromium through tests/e2e/browser.py): a
function's triggers tab with and without a URL, with a schedule and a
topic subscription; a tuning run started from the sizing tab, with its
table and charts; an alert rule's page with its history; a KV store's keys
a page at a time and one value; a cold call's record with the start drawn
as waiting, sandbox, runtime init and handler. After each test, as there,
nothing may have gone to another origin and the browser's console must
hold no error (a 404 the page asked for would be one).

Screenshots go to $MAYFLY_ARTIFACTS when set, else to pytest's temporary
folder."""

import re

import pytest
import requests

from conftest import unique, wait_for
from test_console_ui import AUTH, KEY_ID, SECRET, artifacts, browser, console, deploy, invoke  # noqa: F401

NOOP_PY = "def handler(event, context):\n    return {'ok': True}\n"
FAILER_PY = """\
def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {"ok": True}
"""


def v1(srv, method, path, **kw):
    r = requests.request(method, srv.url + path, headers=AUTH, timeout=120, **kw)
    assert r.status_code < 300, f"{method} {path}: HTTP {r.status_code} {r.text}"
    return r


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    """The server test_console_ui's console fixture logs in to (the same
    key), its alert rules evaluated every second."""
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"{KEY_ID} {SECRET}\n")
    return module_server_factory("--keys", keys, "--alert-interval-s", "1")


def test_the_triggers_tab_with_and_without_a_url(srv, console, artifacts):
    bare, wired = unique("bare"), unique("wired")
    for name in (bare, wired):
        deploy(srv, name, NOOP_PY)
    url = v1(srv, "PUT", f"/v1/functions/{wired}/url", json={"auth": "key"}).json()["url"]
    schedule = unique("nightly")
    v1(srv, "PUT", f"/v1/schedules/{schedule}",
       json={"expression": "cron(30 2 * * ? *)", "timezone": "Europe/Paris", "function": wired})
    topic = unique("orders")
    v1(srv, "PUT", f"/v1/topics/{topic}")
    v1(srv, "POST", f"/v1/topics/{topic}/subscriptions",
       json={"function": wired, "filter": {"kind": ["order"]}})

    # Without a URL, schedule or topic: each card says so, and the page
    # asked for nothing that failed (the fixture checks the console).
    console.go(srv.url, f"#/functions/{bare}/triggers")
    console.wait_text("#no-url", "No URL")
    console.wait_text("#tab-panel", "No schedule targets this function.")
    console.wait_text("#tab-panel", "Not subscribed to any topic.")
    assert not console.visible("#function-url")
    console.screenshot(artifacts, "triggers-none")

    console.go(srv.url, f"#/functions/{wired}/triggers")
    link = console.wait_css("#function-url")
    assert link.text == url and link.get_attribute("href") == url
    console.wait_text("#tab-panel", "cron(30 2 * * ? *)")
    console.wait_text("#tab-panel", "Europe/Paris")
    assert schedule in console.text("#tab-panel")
    console.wait_text("#tab-panel", topic)
    assert '{"kind":["order"]}' in console.text("#tab-panel")
    assert not console.visible("#no-url")
    console.screenshot(artifacts, "triggers")


def test_a_tuning_run_from_the_sizing_tab_shows_its_table_and_charts(srv, console, artifacts):
    name = unique("tuned")
    deploy(srv, name, NOOP_PY)
    invoke(srv, name, {})
    console.go(srv.url, f"#/functions/{name}/sizing")
    sizes = console.wait_css("#tune-sizes")
    sizes.clear()
    sizes.send_keys("128,256")
    runs = console.wait_css("#tune-runs")
    runs.clear()
    runs.send_keys("2")
    console.wait_css("#tab-panel form button[type=submit]").click()
    result = console.wait_css("#tune-result")
    rows = console.wait("the tuning run's table", lambda: [
        r.text for r in result.find_elements("css selector", "tbody tr")] or None)
    assert len(rows) == 2, rows
    assert rows[0].startswith("128 MB") and rows[1].startswith("256 MB"), rows
    assert all("2/2 calls" in r for r in rows), rows
    # Its two charts (p50 duration and cost by size) are drawn.
    console.wait("the tuning run's two charts",
                 lambda: len(result.find_elements("css selector", "figure.chart canvas")) >= 2)
    assert "p50 duration" in result.text and "Cost per million calls" in result.text
    console.wait_css("#advice-message")  # the advice loaded too, whatever it says
    console.screenshot(artifacts, "sizing-tune")


def test_an_alert_rules_page_shows_its_series_and_history(srv, console, artifacts):
    name = unique("alerted")
    deploy(srv, name, FAILER_PY)
    rule = unique("errors")
    v1(srv, "PUT", f"/v1/alerts/{rule}",
       json={"function": name, "metric": "error_rate", "op": ">", "threshold": 0.1,
             "window_s": 60, "severity": "critical"})
    r = invoke(srv, name, {"fail": True})
    assert r.headers.get("X-Mayfly-Function-Error"), r.text

    def fired():
        doc = v1(srv, "GET", f"/v1/alerts/{rule}").json()
        return doc if doc["state"] == "firing" and doc["history"] else None

    doc = wait_for("the rule to fire", fired)
    console.go(srv.url, "#/alerts")
    console.wait_text("main", rule)
    console.all(f"a[href='#/alerts/{rule}']")[0].click()
    console.wait_text("h1", rule)
    console.wait_text("h1", "firing")
    main = console.text("main")
    assert f"Watches {name}: error_rate > 0.1 over 60 s, severity critical." in main, main
    # The history as the API has it: the change to firing, with its value.
    change = doc["history"][0]
    assert change["to"] == "firing", doc
    history = console.wait("the history's rows", lambda: [
        r.text for r in console.all("main table")[-1].find_elements("css selector", "tbody tr")
        if "→" in r.text] or None)
    assert len(history) == len(doc["history"]), (history, doc["history"])
    assert re.search(rf"{change['from']}\s*→\s*firing", history[0]), history
    assert name in history[0], history
    assert history[0].split()[-1] == "%g" % round(change["value"], 3), (history, change)
    console.screenshot(artifacts, "alert")


def test_a_kv_stores_keys_are_browsed_a_page_at_a_time(srv, console, artifacts):
    store = unique("kvpages")
    keys = [f"item-{i:03d}" for i in range(120)]
    with requests.Session() as s:
        for k in keys:
            r = s.put(f"{srv.url}/v1/kv/{store}/{k}", data=f'{{"n": {k[-3:].lstrip("0") or 0}}}',
                      headers=dict(AUTH, **{"Content-Type": "application/json"}), timeout=60)
            assert r.status_code == 200, r.text
    console.go(srv.url, "#/state")
    console.wait_text("main", store)
    console.all(f"a[href='#/kv/{store}']")[0].click()
    console.wait_text("main", "120 keys")

    def shown():
        return [b.text for b in console.all("button.kv-key")]

    # 50 keys a page, in order, through the store's cursor: three pages.
    pages = []
    for page in range(3):
        want_first = keys[page * 50]
        got = console.wait(f"page {page + 1}", lambda: (lambda s: s if s and s[0] == want_first
                                                        else None)(shown()))
        pages.append(got)
        console.wait_text("nav.pager", f"page {page + 1}")
        if page < 2:
            console.wait_css("button.next-page").click()
    assert pages[0] == keys[:50] and pages[1] == keys[50:100] and pages[2] == keys[100:], pages
    assert not console.wait_css("button.next-page").is_enabled()
    console.screenshot(artifacts, "kv-keys")
    # One value, shown as the JSON it is.
    next(b for b in console.all("button.kv-key") if b.text == "item-107").click()
    console.wait_text("#kv-value", '"n": 107')
    console.wait_text("main", "application/json")
    # And back a page.
    console.all("nav.pager button")[0].click()
    console.wait("page 2 again", lambda: shown()[:1] == ["item-050"])


def fmt_ms(text):
    """The number in the console's "12.3 ms" or "1.2 s", in ms."""
    m = re.fullmatch(r"([0-9.]+) (ms|s)", text.strip())
    assert m, text
    return float(m.group(1)) * (1000 if m.group(2) == "s" else 1)


def test_a_cold_calls_record_draws_its_start_in_four_phases(srv, console, artifacts):
    name = unique("coldbar")
    deploy(srv, name, NOOP_PY)
    r = invoke(srv, name, {})
    assert r.headers["X-Mayfly-Cold-Start"] == "1", r.headers
    rid = r.headers["X-Mayfly-Request-Id"]
    rec = wait_for("the record", lambda: (lambda x: x if x.get("status") == "success" else None)(
        requests.get(f"{srv.url}/v1/invocations/{rid}", headers=AUTH, timeout=60).json()))
    want = {
        "queue": rec["queue_ms"] - rec["init_ms"],
        "sandbox": rec["sandbox_ms"],
        "init": rec["init_ms"] - rec["sandbox_ms"],
        "run": rec["duration_ms"],
    }
    console.go(srv.url, f"#/invocations/{rid}")
    console.wait_css("#phases")
    legend = {li.get_attribute("data-phase"): li for li in console.all("#phases li")}
    assert list(legend) == ["queue", "sandbox", "init", "run"], list(legend)
    for phase, ms in want.items():
        text = legend[phase].find_element("css selector", ".ms").text
        # Shown with the precision fmtMs keeps: 2 places under 10 ms, 1
        # under 100, whole ms under 10 s.
        assert abs(fmt_ms(text) - ms) <= max(0.006, ms * 0.006), (phase, text, ms)
    assert [li.text.split(" ")[0] for li in legend.values()] == \
        ["waiting", "sandbox", "runtime", "handler"]
    # The bar: a segment per phase, as wide as its share of the whole.
    segs = console.all("#phases .bar .seg")
    assert [s.get_attribute("data-phase") for s in segs] == ["queue", "sandbox", "init", "run"]
    total = sum(want.values())
    for seg in segs:
        share = float(seg.get_attribute("style").split("width:")[1].split("%")[0])
        assert abs(share - 100 * want[seg.get_attribute("data-phase")] / total) < 0.01
    console.screenshot(artifacts, "record-phases")

    # A warm call: the wait and the handler only.
    r = invoke(srv, name, {})
    assert r.headers["X-Mayfly-Cold-Start"] == "0"
    rid = r.headers["X-Mayfly-Request-Id"]
    wait_for("the warm record", lambda: requests.get(
        f"{srv.url}/v1/invocations/{rid}", headers=AUTH, timeout=60).json().get("status")
        == "success")
    console.go(srv.url, f"#/invocations/{rid}")
    console.wait_text("#phases", "A warm start")
    assert [s.get_attribute("data-phase") for s in console.all("#phases .bar .seg")] == \
        ["queue", "run"]
