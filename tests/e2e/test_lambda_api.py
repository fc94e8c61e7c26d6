"""Lambda's control-plane API (/2015-03-31/functions, SigV4) proven with
Lambda's own clients, unmodified: Debian's awscli, boto3 (python3-boto3),
the AWS SDK for JavaScript v3 (@aws-sdk/client-lambda, driven through
tests/e2e/js/lambda_roundtrip.mjs) and a `provided` function whose bootstrap
is the stock npm aws-lambda-ric@4.0.2. Plus SigV4 itself with raw requests
(a skewed clock, an unknown key, a wrong secret, a changed body), the /v1
bearer tokens from the same keys, development mode, and a function and its
records seen from both APIs.

Every client comes from `make deps` (Debian packages, and `npm ci` in
tests/e2e/js from its package-lock.json); a missing one fails its tests
with a message saying so, it never skips. The handlers are in
tests/e2e/lambda_fixtures/."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import REPO, Entry, executable, make_zip, unique, wait_for

REGION = "us-east-1"
KEY_ID = "AKIAMAYFLYTEST000001"
SECRET = "mayfly/test+Secret0000000000000000000001"
# A second key in the same key file: any configured key signs.
KEY_ID_2 = "AKIAMAYFLYTEST000002"
SECRET_2 = "second-secret-0000000000000000000000002"
ROLE = "arn:aws:iam::000000000000:role/lambda-role"  # accepted, not used

AWS_CLI = "/usr/bin/aws"  # Debian's awscli; a pip or pyenv `aws` earlier on PATH is not it
JS_DIR = REPO / "tests" / "e2e" / "js"
FIXTURES = REPO / "tests" / "e2e" / "lambda_fixtures"
RIC_DIR = JS_DIR / "node_modules" / "aws-lambda-ric"

ARN_RE = re.compile(r"^arn:aws:lambda:us-east-1:000000000000:function:([A-Za-z0-9_-]+)$")
# Lambda writes LastModified as 2024-01-02T03:04:05.678+0000.
LAST_MODIFIED_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?\+0000$")
SYNC_MAX = 6 * 1024 * 1024
EVENT_MAX = 256 * 1024


# ---------------------------------------------------------------- clients


def need_awscli():
    if not Path(AWS_CLI).exists():
        pytest.fail(f"awscli is missing ({AWS_CLI}): `make deps` installs Debian's awscli")


def need_boto3():
    try:
        import boto3  # noqa: F401
        import botocore  # noqa: F401
    except ImportError as e:
        pytest.fail(f"boto3 is missing ({e}): `make deps` installs Debian's python3-boto3 "
                    "(run the tests with /usr/bin/python3, as `make test` does)")


def need_node_package(name, marker):
    node = shutil.which("node")
    if not node:
        pytest.fail("node is missing: `make deps` installs Debian's nodejs")
    if not (JS_DIR / "node_modules" / name / marker).exists():
        pytest.fail(f"npm package {name} is missing from {JS_DIR / 'node_modules'}: "
                    "`make deps` installs it (npm ci from tests/e2e/js/package-lock.json)")
    return node


def b64sha256(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def aws_env(tmp_path, key_id=KEY_ID, secret=SECRET):
    """An environment in which awscli, boto3 and the JS SDK see these
    credentials and nothing of this machine's AWS configuration."""
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        "AWS_PAGER": "",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_MAX_ATTEMPTS": "1",  # every answer is the server's first
        "AWS_RETRY_MODE": "standard",
    })
    return env


def run_aws(srv, env, *args, timeout=60):
    need_awscli()
    return subprocess.run(
        [AWS_CLI, "lambda", *map(str, args), "--endpoint-url", srv.url, "--region", REGION,
         "--output", "json", "--cli-read-timeout", "60", "--cli-connect-timeout", "10"],
        capture_output=True, text=True, env=env, timeout=timeout)


def aws_ok(srv, env, *args):
    """Runs `aws lambda ARGS` and returns its JSON output (None when it
    prints nothing), failing with its stderr when it exits non-zero."""
    p = run_aws(srv, env, *args)
    assert p.returncode == 0, (f"aws lambda {' '.join(map(str, args))}: exit {p.returncode}\n"
                               f"stderr: {p.stderr}\nstdout: {p.stdout}")
    return json.loads(p.stdout) if p.stdout.strip() else None


def boto3_client(srv, key_id=KEY_ID, secret=SECRET, validate=True):
    need_boto3()
    import boto3
    from botocore.config import Config
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret,
                                    region_name=REGION)
    return session.client(
        "lambda", endpoint_url=srv.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60,
                      connect_timeout=10, parameter_validation=validate))


def client_error(excinfo):
    """(error code, HTTP status, message) of a botocore ClientError."""
    resp = excinfo.value.response
    return (resp["Error"].get("Code"), resp["ResponseMetadata"].get("HTTPStatusCode"),
            resp["Error"].get("Message"))


# ---------------------------------------------------------------- /v1 with a token


BEARER = {"Authorization": f"Bearer {KEY_ID}:{SECRET}"}


def v1(srv, method, path, **kw):
    headers = dict(BEARER)
    headers.update(kw.pop("headers", {}))
    return requests.request(method, f"{srv.url}{path}", headers=headers, timeout=60, **kw)


def v1_function(srv, name):
    r = v1(srv, "GET", f"/v1/functions/{name}")
    assert r.status_code == 200, f"GET /v1/functions/{name}: HTTP {r.status_code} {r.text}"
    return r.json()


def v1_instances(srv, name, state):
    """How many of name's instances are in state, from /metrics."""
    r = v1(srv, "GET", "/metrics")
    assert r.status_code == 200, f"/metrics: HTTP {r.status_code} {r.text}"
    m = re.search(r'^mayfly_instances\{function="%s",state="%s"\} (\d+)$'
                  % (re.escape(name), state), r.text, re.M)
    return int(m.group(1)) if m else 0


def v1_logs(srv, name):
    r = v1(srv, "GET", f"/v1/functions/{name}/logs")
    assert r.status_code == 200, f"logs of {name}: HTTP {r.status_code} {r.text}"
    return [json.loads(line) for line in r.text.splitlines() if line.strip()]


def v1_record(srv, request_id, timeout=60):
    def fetch():
        r = v1(srv, "GET", f"/v1/invocations/{request_id}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, f"record {request_id}: HTTP {r.status_code} {r.text}"
        rec = r.json()
        return rec if rec.get("status") not in ("queued", "running") else None
    return wait_for(f"the /v1 record of {request_id}", fetch, timeout)


def wait_for_log(srv, name, needle, timeout=60):
    return wait_for(f"`{needle}` in the logs of {name}",
                    lambda: [ln for ln in v1_logs(srv, name) if needle in ln["message"]],
                    timeout, interval=0.1)


# ---------------------------------------------------------------- code packages


def py_zip(version="v1"):
    src = (FIXTURES / "python_echo" / "lambda_function.py").read_text()
    assert 'VERSION = "v1"' in src
    return make_zip({"lambda_function.py": src.replace('VERSION = "v1"', f'VERSION = "{version}"')})


def node_zip():
    return make_zip({"index.js": (FIXTURES / "node_echo" / "index.js").read_bytes()})


def ric_zip(index_js=None):
    """bootstrap + index.js (the fixture's, or index_js) +
    node_modules/aws-lambda-ric as npm installed it (the native
    rapid-client.node included), less its build inputs."""
    need_node_package("aws-lambda-ric", "rapid-client.node")
    files = {
        "bootstrap": executable((FIXTURES / "ric_node" / "bootstrap").read_bytes()),
        "index.js": index_js if index_js is not None else
        (FIXTURES / "ric_node" / "index.js").read_bytes(),
    }
    skip = {"deps", "src", "scripts"}  # sources npm built rapid-client.node from
    for root, dirs, names in os.walk(RIC_DIR):
        rel_root = Path(root).relative_to(RIC_DIR)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in skip]
        for n in names:
            p = Path(root) / n
            if p.is_symlink() or not p.is_file():
                continue
            mode = p.stat().st_mode & 0o777
            files[f"node_modules/aws-lambda-ric/{(rel_root / n).as_posix()}"] = Entry(
                p.read_bytes(), mode=mode)
    assert "node_modules/aws-lambda-ric/index.mjs" in files, sorted(files)
    return make_zip(files)


def assert_configuration(conf, name, *, runtime, handler, zip_bytes, memory, timeout, env):
    """A FunctionConfiguration as Lambda writes it (every field that is
    off is named at once)."""
    m = ARN_RE.match(conf.get("FunctionArn", ""))
    expected = {
        "FunctionName": name,
        "FunctionArn": f"arn:aws:lambda:{REGION}:000000000000:function:{name}",
        "Runtime": runtime,  # as given: tools compare it with what they sent
        "Handler": handler,
        "CodeSize": len(zip_bytes),
        "CodeSha256": b64sha256(zip_bytes),
        "MemorySize": memory,
        "Timeout": timeout,
        "Environment": {"Variables": env},
        "Version": "$LATEST",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
    }
    wrong = {k: (conf.get(k), v) for k, v in expected.items() if conf.get(k) != v}
    if not LAST_MODIFIED_RE.match(conf.get("LastModified", "")):
        wrong["LastModified"] = (conf.get("LastModified"), "like 2024-01-02T03:04:05.678+0000")
    assert m, conf.get("FunctionArn")
    assert not wrong, ("FunctionConfiguration fields (got, expected): "
                       f"{wrong}\nwhole: {json.dumps(conf, default=str)}")


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("keys") / "keys"
    p.write_text(f"# mayfly access keys\n{KEY_ID} {SECRET}\n\n{KEY_ID_2} {SECRET_2}\n")
    return p


@pytest.fixture(scope="module")
def srv(module_server_factory, keys_file):
    """One server with access keys (--keys FILE) shared by the module."""
    return module_server_factory("--keys", keys_file, "--retry-base-ms", "200")


@pytest.fixture(scope="module")
def lam(srv):
    return boto3_client(srv)


def boto3_create(lam, name, zip_bytes, runtime="python3.12",
                 handler="lambda_function.lambda_handler", **extra):
    # Unless the test sets one, a timeout no cold start on a loaded machine
    # comes near (a call's deadline counts from its acceptance).
    extra.setdefault("Timeout", 60)
    return lam.create_function(FunctionName=name, Runtime=runtime, Handler=handler, Role=ROLE,
                               Code={"ZipFile": zip_bytes}, **extra)


def boto3_invoke(lam, name, event, **extra):
    """invoke → (response, payload bytes)."""
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), **extra)
    return resp, resp["Payload"].read()


# ---------------------------------------------------------------- awscli


def test_awscli_round_trip(srv, tmp_path):
    env = aws_env(tmp_path)
    name = unique("cli")
    v1_zip, v2_zip = py_zip("v1"), py_zip("v2")
    (tmp_path / "v1.zip").write_bytes(v1_zip)
    (tmp_path / "v2.zip").write_bytes(v2_zip)

    conf = aws_ok(srv, env, "create-function", "--function-name", name, "--runtime", "python3.12",
                  "--handler", "lambda_function.lambda_handler", "--role", ROLE,
                  "--zip-file", f"fileb://{tmp_path / 'v1.zip'}", "--memory-size", "256",
                  "--timeout", "15",
                  "--environment", json.dumps({"Variables": {"GREETING": "hello from awscli"}}))
    assert_configuration(conf, name, runtime="python3.12",
                         handler="lambda_function.lambda_handler", zip_bytes=v1_zip, memory=256,
                         timeout=15, env={"GREETING": "hello from awscli"})

    # list-functions, whole and one function a page (awscli follows
    # NextMarker with Marker itself).
    whole = aws_ok(srv, env, "list-functions")
    names = [f["FunctionName"] for f in whole["Functions"]]
    assert name in names, names
    paged = aws_ok(srv, env, "list-functions", "--page-size", "1")
    paged_names = [f["FunctionName"] for f in paged["Functions"]]
    assert sorted(paged_names) == sorted(names), (
        f"one a page: {paged_names}; at once: {names}")

    got = aws_ok(srv, env, "get-function", "--function-name", name)
    assert got["Configuration"]["FunctionName"] == name, got
    assert got["Configuration"]["CodeSha256"] == b64sha256(v1_zip), got
    assert isinstance(got.get("Code"), dict), got

    # invoke, synchronously, with the tail of its log.
    out = tmp_path / "out.json"
    res = aws_ok(srv, env, "invoke", "--function-name", name, "--cli-binary-format",
                 "raw-in-base64-out", "--payload", json.dumps({"marker": "cli-sync"}),
                 "--log-type", "Tail", str(out))
    assert res.get("StatusCode") == 200, res
    assert res.get("ExecutedVersion") == "$LATEST", res
    assert "FunctionError" not in res, res
    result = json.loads(out.read_text())
    assert result["version"] == "v1" and result["event"] == {"marker": "cli-sync"}, result
    assert result["greeting"] == "hello from awscli", result
    assert result["function_name"] == name, result
    assert ARN_RE.match(result["invoked_function_arn"]), result
    assert result["memory_limit_in_mb"] == "256", result
    assert result["region"] == REGION, result
    # The 15 s timeout, counting down and not yet run out.
    assert 15000 >= result["remaining_ms"] > 0, result
    assert "LogResult" in res, f"--log-type Tail gave no LogResult: {res}"
    tail = base64.b64decode(res["LogResult"]).decode(errors="replace")
    assert '"marker": "cli-sync"' in tail, f"the handler's line is not in the tail log:\n{tail}"
    assert len(base64.b64decode(res["LogResult"])) <= 4096, tail

    # invoke --invocation-type Event: 202, no body, and it runs.
    out2 = tmp_path / "out2.json"
    res = aws_ok(srv, env, "invoke", "--function-name", name, "--cli-binary-format",
                 "raw-in-base64-out", "--payload", json.dumps({"marker": "cli-event"}),
                 "--invocation-type", "Event", str(out2))
    assert res.get("StatusCode") == 202, res
    assert out2.read_bytes() == b"", out2.read_bytes()
    wait_for_log(srv, name, '"marker": "cli-event"')

    # update-function-code, and the next call runs the new code.
    conf = aws_ok(srv, env, "update-function-code", "--function-name", name,
                  "--zip-file", f"fileb://{tmp_path / 'v2.zip'}")
    assert conf["CodeSha256"] == b64sha256(v2_zip), conf
    assert conf["CodeSize"] == len(v2_zip), conf
    assert conf["Handler"] == "lambda_function.lambda_handler" and conf["MemorySize"] == 256, conf
    res = aws_ok(srv, env, "invoke", "--function-name", name, "--cli-binary-format",
                 "raw-in-base64-out", "--payload", "{}", str(out))
    assert res.get("StatusCode") == 200, res
    assert json.loads(out.read_text())["version"] == "v2", out.read_text()

    # delete-function, and it is gone.
    assert aws_ok(srv, env, "delete-function", "--function-name", name) is None
    p = run_aws(srv, env, "get-function", "--function-name", name)
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr, (p.returncode, p.stderr)
    names = [f["FunctionName"] for f in aws_ok(srv, env, "list-functions")["Functions"]]
    assert name not in names, names


def test_awscli_bad_signature_is_rejected(srv, tmp_path):
    p = run_aws(srv, aws_env(tmp_path, secret="not-the-secret"), "list-functions")
    assert p.returncode != 0, p.stdout
    assert "InvalidSignatureException" in p.stderr, p.stderr

    p = run_aws(srv, aws_env(tmp_path, key_id="AKIAUNKNOWNKEY000000"), "list-functions")
    assert p.returncode != 0, p.stdout
    assert "UnrecognizedClientException" in p.stderr, p.stderr

    # The second key of the key file signs as well.
    assert "Functions" in aws_ok(srv, aws_env(tmp_path, KEY_ID_2, SECRET_2), "list-functions")


# ---------------------------------------------------------------- boto3


def test_boto3_round_trip(srv, lam):
    name = unique("boto")
    v1_zip, v2_zip = py_zip("v1"), py_zip("v2")
    conf = boto3_create(lam, name, v1_zip, MemorySize=192, Timeout=12,
                        Environment={"Variables": {"GREETING": "hello from boto3"}})
    assert conf["ResponseMetadata"]["HTTPStatusCode"] == 201, conf["ResponseMetadata"]
    expect = dict(runtime="python3.12", handler="lambda_function.lambda_handler",
                  zip_bytes=v1_zip, memory=192, timeout=12, env={"GREETING": "hello from boto3"})
    assert_configuration(conf, name, **expect)
    assert_configuration(lam.get_function_configuration(FunctionName=name), name, **expect)
    got = lam.get_function(FunctionName=name)
    assert_configuration(got["Configuration"], name, **expect)
    assert isinstance(got.get("Code"), dict), got
    assert name in [f["FunctionName"] for f in lam.list_functions()["Functions"]]

    # Synchronous, with the tail of the log; the request id is the
    # function's aws_request_id.
    resp, payload = boto3_invoke(lam, name, {"marker": "boto-sync"}, LogType="Tail")
    assert resp["StatusCode"] == 200, resp
    assert resp.get("ExecutedVersion") == "$LATEST", resp
    assert "FunctionError" not in resp, (resp, payload)
    result = json.loads(payload)
    assert result["event"] == {"marker": "boto-sync"} and result["version"] == "v1", result
    assert result["greeting"] == "hello from boto3" and result["memory_limit_in_mb"] == "192"
    assert result["request_id"] == resp["ResponseMetadata"]["RequestId"], (
        result, resp["ResponseMetadata"])
    tail = base64.b64decode(resp["LogResult"]).decode(errors="replace")
    assert '"marker": "boto-sync"' in tail, tail

    # Event: 202 and an empty body; it runs with the request id it was given.
    resp, payload = boto3_invoke(lam, name, {"marker": "boto-event"}, InvocationType="Event")
    assert resp["StatusCode"] == 202 and payload == b"", (resp, payload)
    event_id = resp["ResponseMetadata"]["RequestId"]
    assert event_id, resp["ResponseMetadata"]
    rec = v1_record(srv, event_id)
    assert rec["function"] == name and rec["status"] == "success", rec
    wait_for_log(srv, name, '"marker": "boto-event"')

    # The function's ARN names it too, with or without the $LATEST qualifier
    # (botocore sends the ':' percent-encoded in the path).
    arn = conf["FunctionArn"]
    assert lam.get_function(FunctionName=arn)["Configuration"]["FunctionName"] == name
    assert lam.get_function_configuration(FunctionName=f"{name}:$LATEST")["FunctionName"] == name
    resp, payload = boto3_invoke(lam, arn, {"marker": "by-arn"}, Qualifier="$LATEST")
    assert "FunctionError" not in resp and json.loads(payload)["event"] == {"marker": "by-arn"}

    # DryRun: 204, nothing runs.
    resp, payload = boto3_invoke(lam, name, {"marker": "dry"}, InvocationType="DryRun")
    assert resp["StatusCode"] == 204 and payload == b"", (resp, payload)

    conf = lam.update_function_code(FunctionName=name, ZipFile=v2_zip)
    assert conf["ResponseMetadata"]["HTTPStatusCode"] == 200, conf["ResponseMetadata"]
    assert_configuration(conf, name, **dict(expect, zip_bytes=v2_zip))
    resp, payload = boto3_invoke(lam, name, {"marker": "v2"})
    assert json.loads(payload)["version"] == "v2", payload
    wait_for_log(srv, name, '"marker": "v2"')
    assert not [ln for ln in v1_logs(srv, name) if '"marker": "dry"' in ln["message"]], (
        "the DryRun call ran the function")

    resp = lam.delete_function(FunctionName=name)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204, resp
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name)


def test_boto3_update_function_configuration(srv, lam):
    name = unique("conf")
    zip_bytes = py_zip()
    boto3_create(lam, name, zip_bytes, Environment={"Variables": {"GREETING": "before"}})
    conf = lam.update_function_configuration(
        FunctionName=name, Runtime="python3.11", Handler="lambda_function.lambda_handler",
        MemorySize=320, Timeout=25, Environment={"Variables": {"GREETING": "after", "B": "2"}})
    assert conf["ResponseMetadata"]["HTTPStatusCode"] == 200, conf["ResponseMetadata"]
    expect = dict(runtime="python3.11", handler="lambda_function.lambda_handler",
                  zip_bytes=zip_bytes, memory=320, timeout=25,
                  env={"GREETING": "after", "B": "2"})
    assert_configuration(conf, name, **expect)
    assert_configuration(lam.get_function_configuration(FunctionName=name), name, **expect)
    resp, payload = boto3_invoke(lam, name, {"marker": "conf"})
    result = json.loads(payload)
    assert "FunctionError" not in resp, payload
    assert result["greeting"] == "after" and result["memory_limit_in_mb"] == "320", result
    # The new 25 s timeout is the one counting down, not the 60 s the
    # function was created with.
    assert 25000 >= result["remaining_ms"] > 0, result

    # Only what is given changes.
    conf = lam.update_function_configuration(FunctionName=name, Timeout=30)
    assert_configuration(conf, name, **dict(expect, timeout=30))

    # A handler the package does not have is a function error when called.
    lam.update_function_configuration(FunctionName=name, Handler="lambda_function.nope")
    resp, payload = boto3_invoke(lam, name, {})
    assert resp.get("FunctionError") == "Unhandled", (resp, payload)


def test_boto3_conflict_and_bad_parameters(srv, lam):
    name = unique("bad")
    boto3_create(lam, name, py_zip())
    with pytest.raises(lam.exceptions.ResourceConflictException) as e:
        boto3_create(lam, name, py_zip())
    assert client_error(e)[1] == 409, client_error(e)

    cases = [
        dict(Runtime="cobol85"),
        dict(Code={"ZipFile": b"this is not a zip file"}),
    ]
    for i, case in enumerate(cases):
        args = dict(FunctionName=unique(f"bad{i}"), Runtime="python3.12",
                    Handler="lambda_function.lambda_handler", Role=ROLE,
                    Code={"ZipFile": py_zip()})
        args.update(case)
        shown = {k: (v if k != "Code" else "...") for k, v in case.items()}
        with pytest.raises(lam.exceptions.InvalidParameterValueException) as e:
            lam.create_function(**args)
        code, status, message = client_error(e)
        assert status == 400 and message, (shown, code, status, message)
        with pytest.raises(lam.exceptions.ResourceNotFoundException):
            lam.get_function(FunctionName=args["FunctionName"])

    # Values botocore would refuse before sending, sent anyway.
    before = lam.get_function_configuration(FunctionName=name)
    raw = boto3_client(srv, validate=False)
    for case in (dict(MemorySize=1), dict(Timeout=0), dict(MemorySize="lots")):
        with pytest.raises(raw.exceptions.InvalidParameterValueException) as e:
            raw.update_function_configuration(FunctionName=name, **case)
        assert client_error(e)[1] == 400, (case, client_error(e))
    with pytest.raises(raw.exceptions.InvalidParameterValueException):
        raw.create_function(FunctionName="no spaces allowed", Runtime="python3.12",
                            Handler="lambda_function.lambda_handler", Role=ROLE,
                            Code={"ZipFile": py_zip()})
    # The function is as it was.
    after = lam.get_function_configuration(FunctionName=name)
    for k in ("MemorySize", "Timeout", "CodeSha256", "Handler", "Runtime"):
        assert after[k] == before[k], (k, before, after)


def test_two_creates_at_once_one_is_a_conflict(srv):
    """Two CreateFunction calls for one name at the same moment: one makes
    it, the other is ResourceConflictException (never an update of the
    first). Round after round, so that both are on their way at once in
    some of them."""
    for i in range(12):
        name = unique(f"twin{i}")
        gate = threading.Barrier(2)
        outcomes = []

        def create():
            lam = boto3_client(srv)
            gate.wait()
            try:
                boto3_create(lam, name, py_zip())
                outcomes.append("created")
            except lam.exceptions.ResourceConflictException:
                outcomes.append("conflict")
        ts = [threading.Thread(target=create) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert sorted(outcomes) == ["conflict", "created"], (name, outcomes)
        shown = requests.get(f"{srv.url}/v1/functions/{name}", headers=BEARER, timeout=30).json()
        assert shown["version"] == 1, shown


def test_boto3_versions_and_dry_runs_change_nothing(srv, lam):
    """mayfly keeps $LATEST only: a call naming another version finds
    nothing (as Lambda answers for a version that does not exist), and
    UpdateFunctionCode with DryRun only checks."""
    name = unique("qual")
    zip_bytes = py_zip("v1")
    boto3_create(lam, name, zip_bytes)
    for what, call in (
            ("get_function Qualifier=1", lambda: lam.get_function(FunctionName=name,
                                                                   Qualifier="1")),
            ("get_function_configuration Qualifier=1",
             lambda: lam.get_function_configuration(FunctionName=name, Qualifier="1")),
            ("delete_function Qualifier=1", lambda: lam.delete_function(FunctionName=name,
                                                                         Qualifier="1")),
            ("invoke Qualifier=1", lambda: lam.invoke(FunctionName=name, Qualifier="1",
                                                      Payload=b"{}"))):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
            call()
        assert client_error(e)[1] == 404, (what, client_error(e))
        conf = lam.get_function_configuration(FunctionName=name)
        assert conf["CodeSha256"] == b64sha256(zip_bytes), (what, conf)

    lam.update_function_code(FunctionName=name, ZipFile=py_zip("v2"), DryRun=True)
    conf = lam.get_function_configuration(FunctionName=name)
    assert conf["CodeSha256"] == b64sha256(zip_bytes), ("DryRun changed the code", conf)
    resp, payload = boto3_invoke(lam, name, {})
    assert json.loads(payload)["version"] == "v1", ("DryRun changed the code", payload)


def test_boto3_handler_error_is_a_function_error(srv, lam):
    name = unique("fail")
    boto3_create(lam, name, py_zip())
    resp, payload = boto3_invoke(lam, name, {"fail": "boto"})
    assert resp["StatusCode"] == 200, resp
    assert resp.get("FunctionError") == "Unhandled", (resp, payload)
    assert resp.get("ExecutedVersion") == "$LATEST", resp
    err = json.loads(payload)
    assert err.get("errorType") == "ValueError", err
    assert err.get("errorMessage") == "refused: boto", err
    rec = v1_record(srv, resp["ResponseMetadata"]["RequestId"])
    assert rec["status"] == "error" and rec["error_type"] == "ValueError", rec


def test_boto3_unknown_function(srv, lam):
    name = unique("nobody")
    calls = [
        ("get_function", lambda: lam.get_function(FunctionName=name)),
        ("get_function_configuration",
         lambda: lam.get_function_configuration(FunctionName=name)),
        ("invoke", lambda: lam.invoke(FunctionName=name, Payload=b"{}")),
        ("invoke Event", lambda: lam.invoke(FunctionName=name, Payload=b"{}",
                                            InvocationType="Event")),
        ("invoke DryRun", lambda: lam.invoke(FunctionName=name, Payload=b"{}",
                                             InvocationType="DryRun")),
        ("delete_function", lambda: lam.delete_function(FunctionName=name)),
        ("update_function_code", lambda: lam.update_function_code(FunctionName=name,
                                                                  ZipFile=py_zip())),
        ("update_function_configuration",
         lambda: lam.update_function_configuration(FunctionName=name, Timeout=5)),
        ("get_function_event_invoke_config",
         lambda: lam.get_function_event_invoke_config(FunctionName=name)),
    ]
    for what, call in calls:
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as e:
            call()
        assert client_error(e)[1] == 404, (what, client_error(e))

    # The error's raw shape: status, x-amzn-ErrorType, {"Type", "message"}.
    r = signed_request(srv, "GET", f"/2015-03-31/functions/{name}")
    assert r.status_code == 404, r.text
    assert error_type(r) == "ResourceNotFoundException", dict(r.headers)
    body = r.json()
    assert body.get("Type") == "User" and body.get("message"), body
    assert r.headers.get("x-amzn-RequestId"), dict(r.headers)


def test_an_action_mayfly_does_not_serve_is_a_named_error(srv, lam):
    """Versions are not kept: PublishVersion's path is not served, and the
    SDK still gets an error type it can name, not a bare 404."""
    import botocore.exceptions

    name = unique("unserved")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        lam.publish_version(FunctionName=name)
    assert client_error(e)[0] == "UnknownOperationException", client_error(e)
    assert client_error(e)[1] == 404, client_error(e)
    r = signed_request(srv, "DELETE", f"/2019-09-25/functions/{name}/event-invoke-config")
    assert r.status_code == 405 and error_type(r) == "UnknownOperationException", r.text


SLEEPER_PY = """
import time

def lambda_handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"slept": event.get("sleep", 0)}
"""


def test_boto3_throttling_raises_too_many_requests(server, tmp_path):
    # Keys from the environment this time; no queue, so a call that finds
    # the function's one instance busy is throttled at once.
    s = server("--max-queue", "0", env={"MAYFLY_ACCESS_KEYS": f"{KEY_ID}:{SECRET}"})
    lam = boto3_client(s)
    name = unique("throttle")
    boto3_create(lam, name, make_zip({"lambda_function.py": SLEEPER_PY}), Timeout=20)
    r = v1(s, "PUT", f"/v1/functions/{name}", json={"max_concurrency": 1})
    assert r.status_code == 200, f"max_concurrency 1 through /v1: HTTP {r.status_code} {r.text}"
    assert v1_function(s, name)["max_concurrency"] == 1

    slow = {}

    def call_slow():
        try:
            slow["resp"], slow["payload"] = boto3_invoke(boto3_client(s), name, {"sleep": 4})
        except Exception as e:  # noqa: BLE001 - reported below
            slow["error"] = e

    t = threading.Thread(target=call_slow)
    t.start()
    wait_for("the slow call to run", lambda: v1_instances(s, name, "busy") == 1)
    throttled = None
    while t.is_alive() and throttled is None:
        try:
            boto3_invoke(lam, name, {"sleep": 0})
        except lam.exceptions.TooManyRequestsException as e:
            throttled = e
    t.join(60)
    assert throttled is not None, (
        f"no TooManyRequestsException while the function's one instance was busy; "
        f"the busy call got {slow}")
    resp = throttled.response
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 429, resp
    assert resp["Error"]["Code"] == "TooManyRequestsException", resp
    assert "error" not in slow, f"the busy call itself failed: {slow['error']!r}"
    assert "FunctionError" not in slow["resp"], slow
    assert json.loads(slow["payload"]) == {"slept": 4}, slow


def test_boto3_payload_limits(srv, lam):
    name = unique("big")
    boto3_create(lam, name, py_zip())
    # Just under the limits works.
    big = {"marker": "big", "pad": "x" * (EVENT_MAX - 100)}
    resp, payload = boto3_invoke(lam, name, big, InvocationType="Event")
    assert resp["StatusCode"] == 202, resp
    # Over them: RequestEntityTooLargeException (413).
    # (Lambda answers RequestEntityTooLargeException, which its API model
    # lacks: boto3 raises a plain ClientError carrying that code.)
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        boto3_invoke(lam, name, {"pad": "x" * EVENT_MAX}, InvocationType="Event")
    assert client_error(e)[:2] == ("RequestEntityTooLargeException", 413), client_error(e)
    with pytest.raises(ClientError) as e:
        lam.invoke(FunctionName=name, Payload=b'"' + b"x" * SYNC_MAX + b'"')
    assert client_error(e)[:2] == ("RequestEntityTooLargeException", 413), client_error(e)
    # The server is fine after it.
    resp, payload = boto3_invoke(lam, name, {"marker": "after"})
    assert json.loads(payload)["event"] == {"marker": "after"}, payload


def test_boto3_event_invoke_config_and_destination(srv, lam):
    name, dest = unique("evcfg"), unique("evdest")
    boto3_create(lam, dest, py_zip())
    boto3_create(lam, name, py_zip())
    dest_arn = lam.get_function_configuration(FunctionName=dest)["FunctionArn"]

    put = lam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnSuccess": {"Destination": dest_arn}})
    for got in (put, lam.get_function_event_invoke_config(FunctionName=name)):
        assert ARN_RE.match(got.get("FunctionArn", "")), got
        assert got["FunctionArn"].endswith(f":function:{name}"), got
        assert got.get("MaximumRetryAttempts") == 0, got
        assert got.get("MaximumEventAgeInSeconds") == 120, got
        assert got["DestinationConfig"]["OnSuccess"].get("Destination") == dest_arn, got
        assert not got["DestinationConfig"].get("OnFailure", {}).get("Destination"), got
        assert isinstance(got.get("LastModified"), datetime.datetime), got

    # Mapped onto mayfly's async settings, seen through /v1.
    settings = v1_function(srv, name)["async"]
    assert settings["max_retries"] == 0 and settings["max_event_age_s"] == 120, settings
    assert settings["on_success"] == dest, settings

    # An event that succeeds goes on to the destination function.
    resp, _ = boto3_invoke(lam, name, {"marker": "to-destination"}, InvocationType="Event")
    assert resp["StatusCode"] == 202, resp

    def dest_ran():
        r = v1(srv, "GET", f"/v1/functions/{dest}/invocations", params={"limit": 10})
        assert r.status_code == 200, r.text
        return [rec for rec in r.json()["invocations"] if rec["status"] == "success"]
    wait_for(f"the OnSuccess destination {dest} to run", dest_ran, timeout=60)

    # Bad values are refused and change nothing.
    raw = boto3_client(srv, validate=False)
    for case in (dict(MaximumRetryAttempts=3), dict(MaximumEventAgeInSeconds=30),
                 dict(DestinationConfig={"OnFailure": {
                     "Destination": "arn:aws:sqs:us-east-1:000000000000:some-queue"}})):
        with pytest.raises(raw.exceptions.InvalidParameterValueException) as e:
            raw.put_function_event_invoke_config(FunctionName=name, **case)
        assert client_error(e)[1] == 400, (case, client_error(e))
    got = lam.get_function_event_invoke_config(FunctionName=name)
    assert got["MaximumRetryAttempts"] == 0 and got["MaximumEventAgeInSeconds"] == 120, got


def test_boto3_list_functions_pages_with_marker(srv, lam):
    prefix = unique("page")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        boto3_create(lam, n, py_zip())
    seen, pages, marker = [], 0, None
    while True:
        kw = {"MaxItems": 1}
        if marker:
            kw["Marker"] = marker
        page = lam.list_functions(**kw)
        pages += 1
        assert len(page["Functions"]) <= 1, page["Functions"]
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
        assert pages < 500, "NextMarker never ends"
    assert len(seen) == len(set(seen)), f"a function on two pages: {seen}"
    assert set(names) <= set(seen), (names, seen)
    whole = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert sorted(whole) == sorted(seen), (whole, seen)
    # boto3's own paginator does the same.
    by_paginator = [f["FunctionName"]
                    for page in lam.get_paginator("list_functions").paginate(
                        PaginationConfig={"PageSize": 2})
                    for f in page["Functions"]]
    assert sorted(by_paginator) == sorted(seen), (by_paginator, seen)


def test_lambda_and_v1_share_functions_and_records(srv, lam):
    # Created through /v1, seen and invoked through Lambda's API.
    from_v1 = unique("fromv1")
    zip_bytes = py_zip()
    r = v1(srv, "PUT", f"/v1/functions/{from_v1}", json={
        "runtime": "python3", "handler": "lambda_function.lambda_handler", "memory_mb": 160,
        "timeout_s": 70, "env": {"GREETING": "from v1"},
        "code": {"zip_base64": base64.b64encode(zip_bytes).decode()}})
    assert r.status_code == 201, r.text
    conf = lam.get_function_configuration(FunctionName=from_v1)
    assert conf["FunctionName"] == from_v1 and conf["MemorySize"] == 160, conf
    assert conf["Timeout"] == 70 and conf["CodeSha256"] == b64sha256(zip_bytes), conf
    assert conf["Environment"]["Variables"] == {"GREETING": "from v1"}, conf
    resp, payload = boto3_invoke(lam, from_v1, {"marker": "v1-made"})
    assert json.loads(payload)["greeting"] == "from v1", payload

    # The Lambda call's request id (x-amzn-RequestId) is a /v1 record.
    rid = resp["ResponseMetadata"]["RequestId"]
    rec = v1_record(srv, rid)
    assert rec["function"] == from_v1 and rec["status"] == "success", rec
    assert rec["request_id"] == rid, rec

    # Created through Lambda's API, seen and invoked through /v1.
    from_lambda = unique("fromlambda")
    boto3_create(lam, from_lambda, zip_bytes, MemorySize=224, Timeout=90,
                 Environment={"Variables": {"GREETING": "from lambda"}})
    fn = v1_function(srv, from_lambda)
    assert fn["memory_mb"] == 224 and fn["timeout_s"] == 90, fn
    assert fn["env"] == {"GREETING": "from lambda"}, fn
    assert fn["code_sha256"] == hashlib.sha256(zip_bytes).hexdigest(), fn
    r = v1(srv, "POST", f"/v1/functions/{from_lambda}/invoke", data=b'{"marker": "v1-call"}')
    assert r.status_code == 200, r.text
    assert r.json()["greeting"] == "from lambda", r.text
    names = [f["name"] for f in v1(srv, "GET", "/v1/functions").json()["functions"]]
    assert from_lambda in names and from_v1 in names, names

    # Deleted through one, gone from the other.
    assert v1(srv, "DELETE", f"/v1/functions/{from_lambda}").status_code == 204
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=from_lambda)
    lam.delete_function(FunctionName=from_v1)
    assert v1(srv, "GET", f"/v1/functions/{from_v1}").status_code == 404


# ---------------------------------------------------------------- LoggingConfig


# Lambda's LoggingConfig as AWS's current model for the Lambda API has it.
LOGGING_SHAPES = {
    "LoggingConfig": {"type": "structure", "members": {
        "LogFormat": {"shape": "LogFormat"},
        "ApplicationLogLevel": {"shape": "ApplicationLogLevel"},
        "SystemLogLevel": {"shape": "SystemLogLevel"},
        "LogGroup": {"shape": "LogGroup"}}},
    "LogFormat": {"type": "string", "enum": ["JSON", "Text"]},
    "ApplicationLogLevel": {"type": "string",
                            "enum": ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]},
    "SystemLogLevel": {"type": "string", "enum": ["DEBUG", "INFO", "WARN"]},
    "LogGroup": {"type": "string", "max": 512, "min": 1, "pattern": "[\\.\\-_/#A-Za-z0-9]+"},
}


def boto3_client_with_logging_config(srv, models_dir, validate=True):
    """boto3 whose Lambda model has LoggingConfig. Debian's botocore (1.29)
    predates it (Lambda added it in November 2023), so its own model gets
    the shapes AWS's current one has, through botocore's data path: the
    real client then sends LoggingConfig and reads it back."""
    need_boto3()
    import boto3
    import botocore.session
    from botocore.config import Config
    core = botocore.session.get_session()
    loader = core.get_component("data_loader")
    model = loader.load_service_model("lambda", "service-2")
    shapes = model["shapes"]
    if "LoggingConfig" not in shapes:
        shapes.update(LOGGING_SHAPES)
        for shape in ("CreateFunctionRequest", "UpdateFunctionConfigurationRequest",
                      "FunctionConfiguration"):
            shapes[shape]["members"]["LoggingConfig"] = {"shape": "LoggingConfig"}
        d = Path(models_dir) / "lambda" / model["metadata"]["apiVersion"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "service-2.json").write_text(json.dumps(model))
        loader.search_paths.insert(0, str(models_dir))
    session = boto3.session.Session(botocore_session=core, aws_access_key_id=KEY_ID,
                                    aws_secret_access_key=SECRET, region_name=REGION)
    return session.client(
        "lambda", endpoint_url=srv.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, read_timeout=60,
                      connect_timeout=10, parameter_validation=validate))


def test_boto3_logging_config_round_trip(srv, tmp_path):
    lam = boto3_client_with_logging_config(srv, tmp_path / "models")
    name = unique("logcfg")
    group = f"/aws/lambda/{name}"
    conf = boto3_create(lam, name, py_zip(), LoggingConfig={
        "LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN"})
    want = {"LogFormat": "JSON", "ApplicationLogLevel": "DEBUG", "SystemLogLevel": "WARN",
            "LogGroup": group}
    assert conf["LoggingConfig"] == want, conf
    assert lam.get_function_configuration(FunctionName=name)["LoggingConfig"] == want
    assert lam.get_function(FunctionName=name)["Configuration"]["LoggingConfig"] == want
    listed = [f for f in lam.list_functions(MaxItems=1000)["Functions"]
              if f["FunctionName"] == name]
    assert listed and listed[0]["LoggingConfig"] == want, listed
    fn = v1_function(srv, name)
    assert (fn["log_format"], fn["log_level"], fn["system_log_level"]) == (
        "JSON", "DEBUG", "WARN"), fn

    # The runtime gets it: its report of a failed call is a JSON line.
    resp, payload = boto3_invoke(lam, name, {"fail": "json-report"})
    assert resp.get("FunctionError") == "Unhandled", payload
    line = wait_for_log(srv, name, "refused: json-report")[0]["message"]
    doc = json.loads(line)
    assert (doc["level"], doc["errorType"], doc["errorMessage"]) == (
        "ERROR", "ValueError", "refused: json-report"), doc

    # Only what is given changes; a LogGroup is accepted, and the log stays
    # the function's own.
    conf = lam.update_function_configuration(
        FunctionName=name, LoggingConfig={"ApplicationLogLevel": "ERROR", "LogGroup": "/my/group"})
    assert conf["LoggingConfig"] == dict(want, ApplicationLogLevel="ERROR"), conf
    # Back to Text: the levels, which only JSON has, go.
    conf = lam.update_function_configuration(FunctionName=name,
                                             LoggingConfig={"LogFormat": "Text"})
    text = {"LogFormat": "Text", "LogGroup": group}
    assert conf["LoggingConfig"] == text, conf

    raw = boto3_client_with_logging_config(srv, tmp_path / "models", validate=False)
    bad = [
        {"ApplicationLogLevel": "DEBUG"},  # a level needs JSON, as on Lambda
        {"LogFormat": "XML"},
        {"LogFormat": "JSON", "ApplicationLogLevel": "LOUD"},
        {"LogFormat": "JSON", "SystemLogLevel": "ERROR"},
        {"LogGroup": "no spaces allowed"},
        {"LogGroup": ""},
    ]
    for lc in bad:
        with pytest.raises(raw.exceptions.InvalidParameterValueException) as e:
            raw.update_function_configuration(FunctionName=name, LoggingConfig=lc)
        code, status, message = client_error(e)
        assert status == 400 and message, (lc, code, status, message)
    assert lam.get_function_configuration(FunctionName=name)["LoggingConfig"] == text

    # A function created without it is Text, as on Lambda.
    plain = unique("logplain")
    conf = boto3_create(lam, plain, py_zip())
    assert conf["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{plain}"}


# ---------------------------------------------------------------- AWS SDK for JavaScript


def test_js_sdk_round_trip(srv, tmp_path):
    node = need_node_package("@aws-sdk/client-lambda", "package.json")
    name = unique("js")
    zip_bytes = node_zip()
    zip_path = tmp_path / "node.zip"
    zip_path.write_bytes(zip_bytes)
    env = aws_env(tmp_path)
    env.update({"MAYFLY_ENDPOINT": srv.url, "FUNCTION_NAME": name, "ZIP_PATH": str(zip_path)})
    p = subprocess.run([node, str(JS_DIR / "lambda_roundtrip.mjs")], capture_output=True,
                       text=True, env=env, cwd=JS_DIR, timeout=120)
    assert p.returncode == 0, f"lambda_roundtrip.mjs: exit {p.returncode}\n{p.stderr}\n{p.stdout}"
    report = json.loads(p.stdout)
    shown = json.dumps(report, indent=1)

    def ok(step):
        assert "ok" in report.get(step, {}), f"step {step} failed:\n{shown}"
        return report[step]["ok"]

    created = ok("create")
    assert created["status"] == 201, shown
    assert_configuration(created["conf"], name, runtime="nodejs20.x", handler="index.handler",
                         zip_bytes=zip_bytes, memory=256, timeout=10,
                         env={"GREETING": "hello from the JS SDK"})
    got = ok("get")
    assert got["status"] == 200 and got["conf"]["FunctionName"] == name, shown

    inv = ok("invoke")
    assert inv["status"] == 200 and inv["functionError"] is None, shown
    assert inv["executedVersion"] == "$LATEST", shown
    result = json.loads(inv["payload"])
    assert result["event"] == {"marker": "js-sync"} and result["version"] == "v1", shown
    assert result["greeting"] == "hello from the JS SDK", shown
    assert result["function_name"] == name and result["memory_limit_in_mb"] == "256", shown
    assert result["request_id"] == inv["requestId"], shown
    assert inv["log"] and '"marker":"js-sync"' in inv["log"], shown

    err = ok("invokeError")
    assert err["status"] == 200 and err["functionError"] == "Unhandled", shown
    doc = json.loads(err["payload"])
    assert doc.get("errorType") == "TypeError" and doc.get("errorMessage") == "refused: js", shown

    ev = ok("invokeEvent")
    assert ev["status"] == 202 and not ev["payload"], shown

    listed = ok("list")
    assert name in listed["names"], shown
    assert len(listed["names"]) == len(set(listed["names"])), shown
    # One function a page: as many pages as functions (and an empty last
    # page at most).
    assert len(listed["names"]) <= listed["pages"] <= len(listed["names"]) + 1, shown
    assert sorted(listed["names"]) == sorted(listed["wholeNames"]), shown

    assert ok("delete")["status"] == 204, shown
    gone = report["getAfterDelete"].get("error")
    assert gone and gone["name"] == "ResourceNotFoundException" and gone["status"] == 404, shown
    wrong = report["wrongSecret"].get("error")
    assert wrong and wrong["name"] == "InvalidSignatureException" and wrong["status"] == 403, shown

    # The event ran before the function was deleted, or was dropped with
    # it; either way the server is fine.
    assert v1(srv, "GET", "/healthz").status_code == 200


# ---------------------------------------------------------------- aws-lambda-ric


def test_aws_lambda_ric_function(srv, lam):
    name = unique("ric")
    zip_bytes = ric_zip()
    conf = boto3_create(lam, name, zip_bytes, runtime="provided.al2023", handler="index.handler",
                        Timeout=20)
    assert conf["Runtime"] == "provided.al2023", conf

    resp, payload = boto3_invoke(lam, name, {"marker": "ric"}, LogType="Tail")
    tail = base64.b64decode(resp.get("LogResult", "")).decode(errors="replace")
    assert "FunctionError" not in resp, f"{payload!r}\nlog:\n{tail}"
    result = json.loads(payload)
    assert result["served_by"] == "aws-lambda-ric", result
    assert result["event"] == {"marker": "ric"} and result["function_name"] == name, result
    assert result["request_id"] == resp["ResponseMetadata"]["RequestId"], (result, resp)
    assert 20000 >= result["remaining_ms"] > 0, result
    assert '"marker":"ric"' in tail, tail

    resp, payload = boto3_invoke(lam, name, {"fail": "ric"})
    assert resp.get("FunctionError") == "Unhandled", (resp, payload)
    err = json.loads(payload)
    assert err.get("errorType") == "OrderRefused", err
    assert err.get("errorMessage") == "refused: ric", err

    # The runtime keeps serving after an error.
    resp, payload = boto3_invoke(lam, name, {"marker": "again"})
    assert "FunctionError" not in resp and json.loads(payload)["event"] == {"marker": "again"}


# ---------------------------------------------------------------- SigV4, raw


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(method, url, body=b"", key_id=KEY_ID, secret=SECRET, when=None):
    """Signs a request the way the AWS SDKs do for Lambda (host and
    x-amz-date signed), at `when` (a UTC datetime; now by default)."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    u = urllib.parse.urlsplit(url)
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    day = when.strftime("%Y%m%d")
    path = "/".join(urllib.parse.quote(urllib.parse.quote(seg, safe="-_.~"), safe="-_.~")
                    for seg in (u.path or "/").split("/"))
    query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                     for k, v in sorted(urllib.parse.parse_qsl(u.query, keep_blank_values=True)))
    headers = {"host": u.netloc, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, path, query,
                           "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed,
                           hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{REGION}/lambda/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    k = _hmac(("AWS4" + secret).encode(), day)
    for part in (REGION, "lambda", "aws4_request"):
        k = _hmac(k, part)
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"X-Amz-Date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, "
                             f"SignedHeaders={signed}, Signature={signature}"}


def signed_request(srv, method, path, body=b"", send_body=None, **sign):
    url = f"{srv.url}{path}"
    headers = sigv4_headers(method, url, body, **sign)
    headers["Content-Type"] = "application/json"
    return requests.request(method, url, data=body if send_body is None else send_body,
                            headers=headers, timeout=30)


def error_type(r):
    """x-amzn-ErrorType without the ':namespace' AWS may append."""
    return (r.headers.get("x-amzn-ErrorType") or "").split(":")[0]


def test_sigv4_raw_requests(srv):
    now = datetime.datetime.now(datetime.timezone.utc)
    list_path = "/2015-03-31/functions/"

    # The signer is right: a request it signs now is served.
    r = signed_request(srv, "GET", list_path)
    assert r.status_code == 200, f"a correctly signed request: HTTP {r.status_code} {r.text}"
    assert isinstance(r.json().get("Functions"), list), r.text
    r = signed_request(srv, "GET", list_path + "?MaxItems=1")
    assert r.status_code == 200, r.text
    # Four minutes of skew are inside AWS's window.
    r = signed_request(srv, "GET", list_path, when=now - datetime.timedelta(minutes=4))
    assert r.status_code == 200, r.text

    refused = [
        ("10 minutes behind", dict(when=now - datetime.timedelta(minutes=10)),
         "InvalidSignatureException"),
        ("10 minutes ahead", dict(when=now + datetime.timedelta(minutes=10)),
         "InvalidSignatureException"),
        ("an unknown key", dict(key_id="AKIAUNKNOWNKEY000000"), "UnrecognizedClientException"),
        ("a wrong secret", dict(secret="not-the-secret"), "InvalidSignatureException"),
        ("another key's secret", dict(secret=SECRET_2), "InvalidSignatureException"),
    ]
    for what, sign, expected in refused:
        r = signed_request(srv, "GET", list_path, **sign)
        assert r.status_code == 403, f"{what}: HTTP {r.status_code} {r.text}"
        assert error_type(r) == expected, f"{what}: {dict(r.headers)} {r.text}"
        assert (r.json().get("message") or r.json().get("Message")), f"{what}: {r.text}"

    # A body changed after signing.
    path = f"/2015-03-31/functions/{unique('nobody')}/invocations"
    r = signed_request(srv, "POST", path, body=b'{"a": 1}', send_body=b'{"a": 2}')
    assert r.status_code == 403, r.text
    assert error_type(r) == "InvalidSignatureException", (dict(r.headers), r.text)
    # No signature at all.
    r = requests.get(f"{srv.url}{list_path}", timeout=30)
    assert r.status_code == 403, r.text
    assert error_type(r) == "MissingAuthenticationTokenException", (dict(r.headers), r.text)
    # A signature of the right shape for another service.
    bad = sigv4_headers("GET", f"{srv.url}{list_path}")
    bad["Authorization"] = bad["Authorization"].replace("/lambda/", "/s3/")
    r = requests.get(f"{srv.url}{list_path}", headers=bad, timeout=30)
    assert r.status_code == 403, r.text


def test_v1_takes_bearer_tokens_from_the_same_keys(srv):
    # With keys, nothing but /healthz answers without credentials.
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    for method, path in (("GET", "/v1/functions"), ("GET", "/metrics"),
                         ("POST", f"/v1/functions/{unique('x')}/invoke"),
                         ("GET", "/v1/invocations")):
        r = requests.request(method, f"{srv.url}{path}", timeout=10)
        assert r.status_code in (401, 403), (
            f"{method} {path} without a token: HTTP {r.status_code} {r.text}")
    assert v1(srv, "GET", "/metrics").status_code == 200
    r = requests.get(f"{srv.url}/v1/functions", timeout=10,
                     headers={"Authorization": f"Bearer {KEY_ID}:not-the-secret"})
    assert r.status_code in (401, 403), f"/v1 with a wrong token: HTTP {r.status_code} {r.text}"
    for key_id, secret in ((KEY_ID, SECRET), (KEY_ID_2, SECRET_2)):
        r = requests.get(f"{srv.url}/v1/functions", timeout=10,
                         headers={"Authorization": f"Bearer {key_id}:{secret}"})
        assert r.status_code == 200, f"/v1 with {key_id}'s token: HTTP {r.status_code} {r.text}"
    # A bearer token is not a Lambda credential.
    r = requests.get(f"{srv.url}/2015-03-31/functions/", headers=BEARER, timeout=10)
    assert r.status_code == 403, r.text


def test_development_mode_accepts_any_signature(server):
    assert not os.environ.get("MAYFLY_ACCESS_KEYS"), "the test process has keys in its environment"
    s = server()
    lam = boto3_client(s, key_id="anything", secret="goes")
    name = unique("dev")
    boto3_create(lam, name, py_zip())
    resp, payload = boto3_invoke(lam, name, {"marker": "dev"})
    assert json.loads(payload)["event"] == {"marker": "dev"}, payload
    r = requests.get(f"{s.url}/2015-03-31/functions/{name}", timeout=10)
    assert r.status_code == 200, f"unsigned, in development mode: HTTP {r.status_code} {r.text}"
    logs = (s.stdout() + s.stderr()).lower()
    assert "development mode" in logs, "no warning about development mode at start:\n" + logs


def test_reserved_concurrency_is_max_concurrency_and_0_throttles(srv, lam, tmp_path):
    """awscli's put/get/delete-function-concurrency; at 0 every call
    throttles as on Lambda (boto3 sees TooManyRequestsException), and
    removing the reservation puts the default back."""
    env = aws_env(tmp_path)
    name = unique("reserved")
    boto3_create(lam, name, py_zip("v1"))
    assert aws_ok(srv, env, "put-function-concurrency", "--function-name", name,
                  "--reserved-concurrent-executions", "3") == {"ReservedConcurrentExecutions": 3}
    assert aws_ok(srv, env, "get-function-concurrency", "--function-name", name) == {
        "ReservedConcurrentExecutions": 3}
    assert requests.get(f"{srv.url}/v1/functions/{name}", headers=BEARER,
                        timeout=10).json()["max_concurrency"] == 3
    got = aws_ok(srv, env, "get-function", "--function-name", name)
    assert got["Concurrency"] == {"ReservedConcurrentExecutions": 3}, got

    assert aws_ok(srv, env, "put-function-concurrency", "--function-name", name,
                  "--reserved-concurrent-executions", "0") == {"ReservedConcurrentExecutions": 0}
    with pytest.raises(lam.exceptions.TooManyRequestsException) as e:
        boto3_invoke(lam, name, {"marker": "paused"})
    code, status, message = client_error(e)
    assert (code, status) == ("TooManyRequestsException", 429), (code, status, message)

    # Out of range, or not a number: 400, and nothing changes.
    # (awscli itself refuses a negative number.)
    p = run_aws(srv, env, "put-function-concurrency", "--function-name", name,
                "--reserved-concurrent-executions", "1001")
    assert p.returncode != 0 and "InvalidParameterValueException" in p.stderr, p.stderr
    for bad in (-1, "2", None):
        r = signed_request(srv, "PUT", f"/2017-10-31/functions/{name}/concurrency",
                           json.dumps({"ReservedConcurrentExecutions": bad}).encode())
        assert r.status_code == 400 and "InvalidParameterValueException" in r.text, r.text
    assert aws_ok(srv, env, "get-function-concurrency", "--function-name", name) == {
        "ReservedConcurrentExecutions": 0}
    p = run_aws(srv, env, "put-function-concurrency", "--function-name", unique("absent"),
                "--reserved-concurrent-executions", "1")
    assert p.returncode != 0 and "ResourceNotFoundException" in p.stderr, p.stderr

    assert aws_ok(srv, env, "delete-function-concurrency", "--function-name", name) is None
    assert aws_ok(srv, env, "get-function-concurrency", "--function-name", name) == {
        "ReservedConcurrentExecutions": 10}
    resp, payload = boto3_invoke(lam, name, {"marker": "resumed"})
    assert resp["StatusCode"] == 200 and json.loads(payload)["event"] == {"marker": "resumed"}
