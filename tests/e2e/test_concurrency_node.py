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
whose handler throws fails alone. Lambda's invoke store (the real
@aws/lambda-invoke-store package, which the AWS SDK asks for the call's
trace id) names each call's own ids after an await, one call at a time or
many."""

from pathlib import Path

import pytest

from conftest import deploy, get_record, invoke, invoke_all, unique
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


# The package from the tests' own npm tree, bundled with the function as a
# user would.
INVOKE_STORE = Path(__file__).parent / "js" / "node_modules" / "@aws" / "lambda-invoke-store"

STORE_FN = r"""
const crypto = require('crypto');
const { InvokeStore } = require('@aws/lambda-invoke-store');

const TOKEN = crypto.randomUUID(); // once per instance

exports.handler = async (event, context) => {
  // This call's until another call starts: the runtime sets it just before.
  const envTrace = process.env._X_AMZN_TRACE_ID;
  const start = Date.now() / 1000;
  const store = await InvokeStore.getInstanceAsync();
  await new Promise((resolve) => setTimeout(resolve, Number(event.sleep_ms)));
  return { rid: context.awsRequestId, token: TOKEN, start, end: Date.now() / 1000,
    store_rid: store.getRequestId(), store_trace: store.getXRayTraceId() ?? null,
    env_trace: envTrace ?? null, global: store === globalThis.awslambda.InvokeStore,
    has: store.hasContext() };
};
"""


def store_files():
    files = {"index.js": STORE_FN}
    for f in INVOKE_STORE.rglob("*"):
        if f.is_file():
            files[f"node_modules/@aws/lambda-invoke-store/{f.relative_to(INVOKE_STORE)}"] = \
                f.read_bytes()
    return files


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


@pytest.mark.parametrize("slots", [1, SLOTS])
def test_the_invoke_store_names_each_calls_own_ids_after_an_await(srv, slots):
    name = unique("conc-js-store")
    deploy(srv, name, store_files(), runtime="nodejs", handler="index.handler",
           instance_concurrency=slots)
    token = warm(srv, name)
    if slots == 1:
        # One call at a time, one after the other on the one instance.
        responses = [invoke(srv, name, {"sleep_ms": "10"}) for _ in range(3)]
    else:
        responses = invoke_all(srv, name, [{"sleep_ms": "1000"} for _ in range(slots)])
    outs = []
    for r in responses:
        assert ok(r), (r.status_code, r.text)
        out = r.json()
        # The package found the runtime's store and not one of its own.
        assert out["global"] and out["has"], out
        assert out["token"] == token, out
        assert out["store_rid"] == out["rid"] == r.headers["X-Mayfly-Request-Id"], out
        assert out["env_trace"] and out["store_trace"] == out["env_trace"], out
        outs.append(out)
    assert len({o["store_trace"] for o in outs}) == len(outs)
    if slots > 1:
        # The calls overlapped in the one instance, so a store for the
        # whole process would have named another call's ids.
        first_end = min(o["end"] for o in outs)
        assert sum(o["start"] < first_end for o in outs) > 1, outs
