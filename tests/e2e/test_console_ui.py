"""The web console in a real browser: the real server (with access keys)
serves /console/, headless Chromium opens it, and the tests use it as a
person would: log in (a wrong key is refused), see the functions with their
sparklines, invoke from the form, open a failing call's record and replay
it, follow the logs while another client invokes, redrive a dead letter.
After each test nothing may have gone to another origin, and the
browser's console must hold no error.

Screenshots of the main pages go to $MAYFLY_ARTIFACTS when set, else to
pytest's temporary folder."""

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from browser import Browser
from conftest import MAYFLY_BIN, REPO, make_zip, unique, wait_for

KEY_ID, SECRET = "AKIACONSOLE000000001", "console-secret"
TOKEN = f"{KEY_ID}:{SECRET}"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

# The one console message a test causes on purpose: the wrong key's 401.
WRONG_KEY_401 = "/v1/whoami - Failed to load resource: the server responded with a status of 401"

FAILER_PY = """\
import json
def handler(event, context):
    print("failer got " + json.dumps(event, sort_keys=True))
    if event.get("fail"):
        raise ValueError("asked to fail: " + str(event.get("why", "no reason")))
    return {"ok": True, "echo": event}
"""


def cli(srv, *args):
    env = dict(os.environ, MAYFLY_URL=srv.url, MAYFLY_TOKEN=TOKEN)
    r = subprocess.run([MAYFLY_BIN, *args], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, f"mayfly {' '.join(args)}: {r.stderr}"
    return r.stdout


def deploy(srv, name, source, **settings):
    body = {"runtime": "python3", "handler": "app.handler", "timeout_s": 60,
            "code": {"zip_base64": base64.b64encode(make_zip({"app.py": source})).decode()}}
    body.update(settings)
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, headers=AUTH, timeout=120)
    assert r.status_code in (200, 201), r.text


def invoke(srv, name, event, asynchronous=False):
    headers = dict(AUTH)
    if asynchronous:
        headers["X-Mayfly-Invocation-Type"] = "Event"
    return requests.post(f"{srv.url}/v1/functions/{name}/invoke", data=json.dumps(event),
                         headers=headers, timeout=120)


@pytest.fixture(scope="module")
def srv(module_server_factory, tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys") / "keys"
    keys.write_text(f"{KEY_ID} {SECRET}\n")
    s = module_server_factory("--keys", keys, "--retry-base-ms", "50")
    # The examples, deployed through the CLI as a user would.
    for example in ("hello-python", "hello-node"):
        folder = REPO / "examples" / example
        cli(s, "deploy", example, str(folder), *(folder / "deploy.args").read_text().split())
    s.failer = unique("failer")
    deploy(s, s.failer, FAILER_PY, **{"async": {"max_retries": 0}})
    for event in ({"n": 1}, {"n": 2}, {"fail": True, "why": "warm-up"}):
        invoke(s, s.failer, event)
    r = invoke(s, "hello-python", {"name": "console"})
    assert r.status_code == 200, r.text
    return s


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    folder = os.environ.get("MAYFLY_ARTIFACTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        return Path(folder)
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="module")
def browser():
    b = Browser(1280, 800)
    yield b
    b.quit()


@pytest.fixture
def console(srv, browser):
    """The browser, logged in to the console; after the test, no request
    may have left the server's origin and the console holds no error."""
    if not browser.driver.current_url.startswith(srv.url + "/console/"):
        browser.get(srv.url + "/console/")
    if browser.wait("the login form or a page", lambda: browser.visible("#access-key") or browser.visible("#who span")) \
            and browser.visible("#access-key"):
        log_in(browser, TOKEN)
        browser.wait_text("#who", KEY_ID)
    yield browser
    assert browser.foreign_requests(srv.url) == []
    assert browser.console_errors(allowed=(WRONG_KEY_401,)) == []


def log_in(b, key):
    field = b.wait_css("#access-key")
    field.clear()
    field.send_keys(key)
    b.wait_css("#login-submit").click()


def test_a_wrong_key_is_refused_and_the_right_one_logs_in(srv, browser, artifacts):
    browser.get(srv.url + "/console/")
    browser.wait_css("#access-key")
    log_in(browser, "AKIANOTAKEY000000001:nope")
    browser.wait_text("#login-status", "The server refused this key")
    assert "#access-key" and browser.visible("#access-key")
    browser.screenshot(artifacts, "login-refused")
    log_in(browser, TOKEN)
    browser.wait_text("#who", KEY_ID)
    browser.wait_css("table.functions")
    # The key is in this tab's session storage, and nowhere as a cookie.
    assert browser.driver.execute_script("return sessionStorage.getItem('mayfly.key')") == TOKEN
    assert browser.driver.get_cookies() == []
    errors = browser.console_errors()
    assert all(WRONG_KEY_401 in e["message"] for e in errors), errors
    assert browser.foreign_requests(srv.url) == []


def test_the_functions_are_listed_with_sparklines(srv, console, artifacts):
    console.go(srv.url, "#/functions")
    table = console.wait_css("table.functions")
    for name in ("hello-python", "hello-node", srv.failer):
        console.wait_text("table.functions", name)
    # Each listed function has a drawn sparkline for its calls and one for
    # its errors, and the failer's totals count what it ran.
    console.wait("a sparkline per function and metric",
                 lambda: len(console.all("table.functions .spark canvas")) >= 6)
    row = next(r for r in table.find_elements("css selector", "tbody tr") if srv.failer in r.text)
    console.wait("the failer's call count", lambda: "3 calls" in row.text and "1 call" in row.text)
    assert "python3" in row.text and "128 MB" in row.text and "USD" in row.text
    console.screenshot(artifacts, "functions")


def test_invoke_from_the_form_shows_result_logs_and_record(srv, console, artifacts):
    console.go(srv.url, f"#/functions/{srv.failer}/invoke")
    editor = console.wait_css("#event")
    editor.clear()
    editor.send_keys('{"from": "the console form"}')
    console.wait_css("#invoke-submit").click()
    console.wait_text("#invoke-body", '"from": "the console form"')
    request_id = console.wait_css("#invoke-answer .request-id").text
    console.wait_text("#invoke-record", "success")
    console.wait_text("#invoke-logs", 'failer got {"from": "the console form"}')
    assert request_id in console.text("#invoke-record")
    # The record the page shows is the server's.
    r = requests.get(f"{srv.url}/v1/invocations/{request_id}", headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.json()["event"] == {"from": "the console form"}
    console.screenshot(artifacts, "invoke")
    # The event is remembered for the next visit.
    console.go(srv.url, f"#/functions/{srv.failer}/overview")
    console.go(srv.url, f"#/functions/{srv.failer}/invoke")
    console.wait_text("#recent-events", "the console form")


def test_a_failing_call_shows_event_error_and_logs_and_replays(srv, console, artifacts):
    r = invoke(srv, srv.failer, {"fail": True, "why": "for the record page"})
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled"
    request_id = r.headers["X-Mayfly-Request-Id"]
    console.go(srv.url, f"#/functions/{srv.failer}/records")
    # Filter to the errors and open this call from the list.
    console.wait_css("#f-status")
    console.driver.execute_script(
        "const s = document.getElementById('f-status'); s.value = 'error';")
    console.wait_css("#filter-apply").click()

    def open_record():
        # The filtered list (no successful call in it) replaces the one
        # shown before it: a link found in the old one is gone (stale), and
        # the wait looks again.
        if "success" in console.text("table.records"):
            return False
        link = next((a for a in console.all("table.records a.record-link")
                     if a.get_attribute("data-request-id") == request_id), None)
        if link is None:
            return False
        console.screenshot(artifacts, "records")
        link.click()
        return True

    console.wait(f"the record {request_id} in the filtered list", open_record)
    console.wait_text("#record-event", '"why": "for the record page"')
    console.wait_text("main", "ValueError: asked to fail: for the record page")
    console.wait_text("#record-logs", 'failer got {"fail": true, "why": "for the record page"}')
    console.wait_text("#record-logs", "REPORT RequestId: " + request_id)
    console.screenshot(artifacts, "record")
    # Replay: the function now succeeds for this event, so the diff shows
    # the recorded error against the new result.
    deploy(srv, srv.failer, FAILER_PY.replace('if event.get("fail"):', "if False:"),
           **{"async": {"max_retries": 0}})
    try:
        console.wait_css("#replay").click()
        console.wait_css("#replay-diff")
        diff = console.text("#replay-diff")
        assert '-   "errorType": "ValueError",' in diff
        assert '+   "ok": true' in diff
        new_id = console.wait_css("#replay-result a.replay-link").text
        rec = requests.get(f"{srv.url}/v1/invocations/{new_id}", headers=AUTH, timeout=60)
        wait_for("the replay's record", lambda: requests.get(
            f"{srv.url}/v1/invocations/{new_id}", headers=AUTH, timeout=60).status_code == 200)
        rec = requests.get(f"{srv.url}/v1/invocations/{new_id}", headers=AUTH, timeout=60).json()
        assert rec["replay_of"] == request_id and rec["status"] == "success"
        console.screenshot(artifacts, "replay")
    finally:
        deploy(srv, srv.failer, FAILER_PY, **{"async": {"max_retries": 0}})


def test_following_logs_shows_another_clients_calls(srv, console, artifacts):
    console.go(srv.url, f"#/functions/{srv.failer}/logs")
    console.wait_text("#follow-state", "following")
    marker = unique("live")
    # Another client calls while the page follows: its lines arrive.
    wait_for("the follow stream to be open", lambda: "following" in console.text("#follow-state"))
    r = invoke(srv, srv.failer, {"marker": marker})
    assert r.status_code == 200, r.text
    console.wait_text("#live-logs", f'"marker": "{marker}"')
    second = unique("again")
    invoke(srv, srv.failer, {"marker": second})
    console.wait_text("#live-logs", f'"marker": "{second}"')
    console.screenshot(artifacts, "logs")
    # Leaving the page ends the stream (the next page loads normally).
    console.go(srv.url, f"#/functions/{srv.failer}/overview")
    console.wait_css("dl.facts")


def test_a_dead_letter_is_redriven(srv, console, artifacts):
    r = invoke(srv, srv.failer, {"fail": True, "why": "dead letter"}, asynchronous=True)
    assert r.status_code == 202, r.text
    first = r.json()["request_id"]

    def letters():
        r = requests.get(f"{srv.url}/v1/functions/{srv.failer}/dead-letters", headers=AUTH,
                         timeout=60)
        return r.json()["dead_letters"]

    letter = wait_for("the dead letter", lambda: next(
        (d for d in letters() if d["request_id"] == first), None))
    console.go(srv.url, f"#/functions/{srv.failer}/dead-letters")
    button = console.wait(
        "the dead letter's redrive button",
        lambda: console.visible(f"button.redrive[data-id='{letter['id']}']"))
    assert "dead letter" in console.text("table.dead-letters")
    console.screenshot(artifacts, "dead-letters")
    button.click()
    redriven = console.wait_css("#redrive-result a.redriven").text
    assert redriven and redriven != first
    # The server queued it again: the letter is gone, the new event ran.
    assert all(d["id"] != letter["id"] for d in letters())
    wait_for("the redriven event's record", lambda: requests.get(
        f"{srv.url}/v1/invocations/{redriven}", headers=AUTH, timeout=60).json().get("status")
        not in (None, "queued", "running"))


def test_charts_usage_alerts_and_state_pages_draw(srv, console, artifacts):
    console.go(srv.url, f"#/functions/{srv.failer}/overview")
    console.wait("five charts", lambda: len(console.all("figure.chart canvas")) >= 5)
    console.screenshot(artifacts, "function")
    # The same page in the dark scheme: the charts take its colours.
    console.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        console.go(srv.url, f"#/functions/{srv.failer}/records")
        console.go(srv.url, f"#/functions/{srv.failer}/overview")
        console.wait("five charts", lambda: len(console.all("figure.chart canvas")) >= 5)
        background = console.driver.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 23, 29)", background
        console.screenshot(artifacts, "function-dark")
    finally:
        console.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    console.go(srv.url, "#/usage")
    console.wait_text("main", srv.failer)
    console.wait_text("main", "USD")
    console.screenshot(artifacts, "usage")
    console.go(srv.url, "#/alerts")
    console.wait_text("main", "No alert rules")
    console.go(srv.url, "#/state")
    console.wait_text("main", "Volumes")


def test_a_phone_sized_screen_shows_the_functions_without_sideways_scrolling(srv, console,
                                                                              artifacts):
    console.set_size(390, 844)
    try:
        console.go(srv.url, "#/functions")
        console.wait_text("table.functions", srv.failer)
        width = console.driver.execute_script(
            "return [document.documentElement.scrollWidth, window.innerWidth]")
        assert width[0] <= width[1], width
        console.screenshot(artifacts, "functions-phone")
    finally:
        console.set_size(1280, 800)
