"""Many calls per instance ("instance_concurrency": N) on the nodejs
runtime: N loops in one process, their handlers side by side on the event
loop, each call's log lines found by an AsyncLocalStorage. The function
draws a token when its module loads, so calls that name the same token ran
in the same instance.

8 slow calls at once run in one instance and overlap in time, each with
its own result and its own log lines (process.stdout.write,
process.stderr.write, console after an await, and a line left
unfinished), in the text and the JSON log format, with metering per call;
a call past its deadline fails alone and the instance goes on; a call
whose handler throws fails alone."""

import pytest

from conftest import deploy, get_record, invoke_all, unique
from test_concurrency_python import (SLOTS, check_eight_slow_calls,
                                     check_late_call_fails_alone, ok, warm)

JS_FN = r"""
const crypto = require('crypto');

const TOKEN = crypto.randomUUID().replace(/-/g, ''); // once per instance

exports.handler = async (event, context) => {
  const tag = event.tag;
  const start = Date.now() / 1000;
  process.stdout.write(`stdout line ${tag}\n`);
  process.stderr.write(`stderr line ${tag}\n`);
  await new Promise((resolve) => setTimeout(resolve, Number(event.sleep_ms)));
  // After the await: the call's id must still be found.
  console.log(`logger line ${tag}`);
  if (event.fail) throw new Error(`failed ${tag}`);
  process.stdout.write(`slept ${tag}`); // unfinished: the runtime ends it with the call
  return { rid: context.awsRequestId, tag, token: TOKEN, start, end: Date.now() / 1000,
    remaining_ms: context.getRemainingTimeInMillis() };
};
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def deploy_js(srv, name, **settings):
    deploy(srv, name, {"index.js": JS_FN}, runtime="nodejs", handler="index.handler",
           instance_concurrency=SLOTS, **settings)


@pytest.mark.parametrize("log_format", ["Text", "JSON"])
def test_eight_slow_calls_share_one_instance_and_overlap_each_with_its_own_result_and_logs(
        srv, log_format):
    name = unique("conc-js")
    deploy_js(srv, name, log_format=log_format)
    check_eight_slow_calls(srv, name, lambda tag: [f"stdout line {tag}", f"stderr line {tag}",
                                                   f"logger line {tag}"])


def test_a_call_past_its_deadline_fails_alone_and_the_instance_goes_on(srv):
    name = unique("conc-js-late")
    deploy_js(srv, name, timeout_s=15)
    check_late_call_fails_alone(srv, name, 15)


def test_a_call_that_throws_fails_alone(srv):
    name = unique("conc-js-fail")
    deploy_js(srv, name)
    token = warm(srv, name)
    tags = [f"fail{i}x" for i in range(SLOTS)]
    events = [{"tag": t, "sleep_ms": "1000"} for t in tags]
    events[0]["fail"] = True
    responses = invoke_all(srv, name, events)

    failed = responses[0]
    assert failed.headers.get("X-Mayfly-Function-Error") == "Unhandled", failed.text
    assert failed.json()["errorMessage"] == f"failed {tags[0]}", failed.text
    assert get_record(srv, failed.headers["X-Mayfly-Request-Id"])["status"] == "error"
    for tag, r in zip(tags[1:], responses[1:]):
        assert ok(r), (tag, r.status_code, r.text)
        assert r.json()["tag"] == tag and r.json()["token"] == token, r.text
