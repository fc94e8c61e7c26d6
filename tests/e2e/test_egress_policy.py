"""A function's egress rules as users set and see them: `"egress"` in /v1
(canonical texts back, 400 naming a bad rule, kept across updates), the
server's --default-egress for functions created without the field (through
/v1 and through Lambda's CreateFunction with boto3), `mayfly deploy
--egress` and `mayfly get`, and the server refusing to start on a bad
--default-egress, --egress-hosts or --egress-max-connections. Whether the
rules let connections through is the gateway's tests' part."""

import json
import subprocess

import pytest
import requests

from conftest import MAYFLY_BIN, assert_error, fn_body, free_port, py_zip, unique

EXIT_TIMEOUT_S = 60  # a deadline for a server that hangs, not a timing check


def put(srv, name, body):
    return requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)


def get(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def run_server(*args):
    """Runs a server expected to refuse to start; fails the test if it is
    still running after EXIT_TIMEOUT_S."""
    proc = subprocess.Popen([MAYFLY_BIN, "server", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        out, err = proc.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"server kept running; expected it to refuse to start.\n"
                    f"stdout: {out}\nstderr: {err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def boto3_lambda(srv, tmp_path, monkeypatch):
    """boto3's Lambda client against srv (development mode: any key signs),
    blind to this machine's AWS configuration."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as e:
        pytest.fail(f"boto3 is missing ({e}): `make deps` installs Debian's python3-boto3 "
                    "(run the tests with /usr/bin/python3, as `make test` does)")
    empty = tmp_path / "aws-empty-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    session = boto3.session.Session(aws_access_key_id="AKIDEGRESSTEST", aws_secret_access_key="x",
                                    region_name="us-east-1")
    return session.client("lambda", endpoint_url=srv.url,
                          config=Config(retries={"max_attempts": 1, "mode": "standard"},
                                        read_timeout=60, connect_timeout=10))


LAMBDA_ZIP = py_zip({"lambda_function.py": "def lambda_handler(event, context):\n"
                                            "    return event\n"})


def lambda_create(lam, name):
    return lam.create_function(FunctionName=name, Runtime="python3.12",
                               Handler="lambda_function.lambda_handler",
                               Role="arn:aws:iam::000000000000:role/lambda-role",
                               Code={"ZipFile": LAMBDA_ZIP}, Timeout=30)


# ---------------------------------------------------------------- /v1


def test_rules_are_shown_back_canonical_in_put_get_list_and_cli(shared_server):
    name = unique("eg")
    given = ["API.Example.com.:443", "*.Example.ORG", "203.0.113.0/24:443", "10.0.0.1/32",
             "[2001:DB8::/32]:443", "2001:db8:0:0::1", "*:8443", "api.example.com:443"]
    want = ["api.example.com:443", "*.example.org", "203.0.113.0/24:443", "10.0.0.1",
            "[2001:db8::/32]:443", "2001:db8::1", "*:8443"]
    r = put(shared_server, name, fn_body(egress=given))
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == want

    assert get(shared_server, name)["egress"] == want
    listed = requests.get(f"{shared_server.url}/v1/functions", timeout=30).json()["functions"]
    assert [f["egress"] for f in listed if f["name"] == name] == [want]

    p = shared_server.cli("get", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["egress"] == want


def test_no_rules_by_default(shared_server):
    name = unique("none")
    r = put(shared_server, name, fn_body())
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == []
    assert get(shared_server, name)["egress"] == []


@pytest.mark.parametrize("egress,mentions", [
    (["ok.example.com", "api.example.com:99999"],
     ['egress[1]: bad egress rule "api.example.com:99999"', "port must be 1-65535"]),
    (["x:0"], ['"x:0"', "port must be 1-65535"]),
    (["a.*.example.com"], ['"a.*.example.com"', "'*' is allowed only as a whole first label"]),
    (["*example.com"], ['"*example.com"', "'*'"]),
    (["10.1.2.3/8"], ['"10.1.2.3/8"', "host bits set; did you mean 10.0.0.0/8?"]),
    (["10.0.0.0/33"], ['"10.0.0.0/33"', "prefix length must be 0-32"]),
    (["1.2.3"], ['"1.2.3"', "not an IPv4 address"]),
    (["example.123"], ['"example.123"', "not a host name (it ends in a number)"]),
    (["256.1.1.1"], ['"256.1.1.1"', "not an IPv4 address"]),
    (["0x7f000001"], ['"0x7f000001"', "ends in a number"]),
    (["2001:db8::/32:443"], ['"2001:db8::/32:443"', "[2001:db8::/32]:443"]),
    (["[2001:db8::1"], ['"[2001:db8::1"', "missing ']'"]),
    (["2001:db8::g"], ['"2001:db8::g"', "not an IPv6 address"]),
    (["under_score.ok", "bad label-.com"], ['egress[1]', '"bad label-.com"', "white space"]),
    (["-a.example.com"], ['"-a.example.com"', "starts or ends with '-'"]),
    (["a" * 64 + ".com"], ["a" * 40, "longer than 63"]),
    (["http://example.com"], ['"http://example.com"', "port"]),
    ([""], ['egress[0]: bad egress rule ""', "empty"]),
    ([443], ["egress: element 0 is not a string"]),
    ("api.example.com", ["egress: must be an array of at most 64 rules"]),
    (None, ["egress: must be an array"]),
    ([f"h{i}.example.com" for i in range(65)], ["egress: must be an array of at most 64 rules"]),
])
def test_a_bad_rule_gets_400_naming_it(shared_server, egress, mentions):
    name = unique("bad")
    body = fn_body()
    body["egress"] = egress
    r = put(shared_server, name, body)
    assert_error(r, 400, "bad_request", *mentions)
    # Nothing was created.
    assert requests.get(f"{shared_server.url}/v1/functions/{name}", timeout=30).status_code == 404


def test_updates_keep_or_replace_the_rules(shared_server):
    name = unique("upd")
    r = put(shared_server, name, fn_body(egress=["db.internal:5432"]))
    assert r.status_code == 201, r.text
    assert (r.json()["egress"], r.json()["version"]) == (["db.internal:5432"], 1)

    # An update without the field keeps the rules.
    r = put(shared_server, name, {"timeout_s": 9})
    assert r.status_code == 200, r.text
    assert (r.json()["egress"], r.json()["version"]) == (["db.internal:5432"], 2)

    # One with the field replaces them, and is a new version.
    r = put(shared_server, name, {"egress": ["*.Example.com:443", "db.internal:5432"]})
    assert r.status_code == 200, r.text
    assert (r.json()["egress"], r.json()["version"]) == (
        ["*.example.com:443", "db.internal:5432"], 3)

    # A refused update changes nothing.
    r = put(shared_server, name, {"egress": ["ok.example.com", "[::1]:0"]})
    assert_error(r, 400, "bad_request", 'egress[1]: bad egress rule "[::1]:0"')
    fn = get(shared_server, name)
    assert (fn["egress"], fn["version"]) == (["*.example.com:443", "db.internal:5432"], 3)

    r = put(shared_server, name, {"egress": []})
    assert r.status_code == 200, r.text
    assert (r.json()["egress"], r.json()["version"]) == ([], 4)


# ---------------------------------------------------------------- --default-egress


def test_default_egress_applies_to_functions_created_without_rules(server, tmp_path,
                                                                    monkeypatch):
    srv = server("--default-egress", " *:443, 10.0.0.0/8,API.example.com ")
    default = ["*:443", "10.0.0.0/8", "api.example.com"]

    # Through /v1, without the field: the default.
    plain = unique("plain")
    r = put(srv, plain, fn_body())
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == default
    # With the field, even empty: what it says.
    closed = unique("closed")
    r = put(srv, closed, fn_body(egress=[]))
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == []
    own = unique("own")
    r = put(srv, own, fn_body(egress=["db.internal:5432"]))
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == ["db.internal:5432"]
    # Updates without the field keep each function's own rules.
    for name, rules in ((plain, default), (closed, []), (own, ["db.internal:5432"])):
        r = put(srv, name, {"memory_mb": 256})
        assert r.status_code == 200, r.text
        assert r.json()["egress"] == rules, name

    # Through Lambda's CreateFunction, which has no such field: the default.
    lam = boto3_lambda(srv, tmp_path, monkeypatch)
    viaboto = unique("boto")
    conf = lambda_create(lam, viaboto)
    assert conf["FunctionName"] == viaboto
    assert get(srv, viaboto)["egress"] == default
    # Lambda's updates keep them too.
    lam.update_function_configuration(FunctionName=viaboto, Timeout=20)
    lam.update_function_code(FunctionName=viaboto, ZipFile=LAMBDA_ZIP)
    fn = get(srv, viaboto)
    assert (fn["egress"], fn["timeout_s"]) == (default, 20)

    # A restart with another default changes no function already created.
    srv.stop()
    srv.extra_args = ["--default-egress", "other.example.com:443"]
    srv.start()
    for name, rules in ((plain, default), (closed, []), (own, ["db.internal:5432"]),
                        (viaboto, default)):
        assert get(srv, name)["egress"] == rules, name
    fresh = unique("fresh")
    r = put(srv, fresh, fn_body())
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == ["other.example.com:443"]
    lam = boto3_lambda(srv, tmp_path, monkeypatch)
    viaboto2 = unique("boto")
    lambda_create(lam, viaboto2)
    assert get(srv, viaboto2)["egress"] == ["other.example.com:443"]


def test_without_default_egress_lambda_functions_have_no_network(server, tmp_path,
                                                                 monkeypatch):
    srv = server()
    lam = boto3_lambda(srv, tmp_path, monkeypatch)
    name = unique("boto")
    lambda_create(lam, name)
    assert get(srv, name)["egress"] == []


# ---------------------------------------------------------------- mayfly deploy


@pytest.fixture
def app_dir(tmp_path):
    d = tmp_path / "app"
    d.mkdir()
    (d / "app.py").write_text("def handler(event, context):\n    return event\n")
    return d


def test_cli_deploy_sets_the_rules(shared_server, app_dir):
    name = unique("cli")
    p = shared_server.cli("deploy", name, app_dir, "--runtime", "python3", "--handler",
                          "app.handler", "--egress", "API.example.com:443, *.x.org",
                          "--egress", "[2001:db8::/32]:443")
    assert p.returncode == 0, p.stderr
    want = ["api.example.com:443", "*.x.org", "[2001:db8::/32]:443"]
    assert get(shared_server, name)["egress"] == want
    p = shared_server.cli("get", name)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["egress"] == want

    # A deploy without --egress keeps them.
    p = shared_server.cli("deploy", name, app_dir, "--timeout", "7")
    assert p.returncode == 0, p.stderr
    assert get(shared_server, name)["egress"] == want

    # --egress '' sets none.
    p = shared_server.cli("deploy", name, app_dir, "--egress", "")
    assert p.returncode == 0, p.stderr
    fn = get(shared_server, name)
    assert (fn["egress"], fn["version"]) == ([], 3)


@pytest.mark.parametrize("args,mentions", [
    (["--egress", "ok.example.com,x:0"], ['egress[1]: bad egress rule "x:0"',
                                          "port must be 1-65535"]),
    (["--egress", "a.com,,b.com"], ['egress[1]: bad egress rule ""', "empty"]),
    (["--egress", "10.1.0.0/8"], ["did you mean 10.0.0.0/8?"]),
    (["--egress", ",".join(f"h{i}.com" for i in range(40)),
      "--egress", ",".join(f"g{i}.com" for i in range(40))], ["at most 64 rules"]),
])
def test_cli_deploy_bad_rules_exit_2_naming_them(shared_server, app_dir, args, mentions):
    name = unique("clibad")
    p = shared_server.cli("deploy", name, app_dir, "--runtime", "python3", "--handler",
                          "app.handler", *args)
    assert p.returncode == 2, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    assert "--egress" in p.stderr
    for m in mentions:
        assert m in p.stderr, p.stderr
    assert requests.get(f"{shared_server.url}/v1/functions/{name}", timeout=30).status_code == 404


def test_cli_help_documents_egress():
    for cmd in (["deploy", "--help"], ["server", "--help"]):
        p = subprocess.run([MAYFLY_BIN, *cmd], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stderr
        for flag in (["--egress RULES"] if cmd[0] == "deploy" else
                     ["--default-egress RULES", "--egress-hosts FILE",
                      "--egress-max-connections N", "--egress-splice on|off"]):
            assert flag in p.stdout, f"mayfly {' '.join(cmd)} does not mention {flag}"


# ---------------------------------------------------------------- server flags


def listen_args(tmp_path):
    return ["--listen", f"127.0.0.1:{free_port()}", "--data", tmp_path / "data"]


@pytest.mark.parametrize("rules,mentions", [
    ("api.example.com,10.1.2.3/8", ["--default-egress", '"10.1.2.3/8"',
                                     "did you mean 10.0.0.0/8?"]),
    ("a.com,,b.com", ["--default-egress", 'egress[1]: bad egress rule ""', "empty"]),
    ("*.*", ["--default-egress", '"*.*"']),
    ("x:65536", ["--default-egress", '"x:65536"', "port must be 1-65535"]),
])
def test_bad_default_egress_refuses_to_start(tmp_path, rules, mentions):
    p = run_server(*listen_args(tmp_path), "--default-egress", rules)
    assert p.returncode == 2, p
    for m in mentions:
        assert m in p.stderr, p.stderr
    assert "listening" not in p.stdout


@pytest.mark.parametrize("value", ["0", "65537", "many", "-1", ""])
def test_bad_egress_max_connections_refuses_to_start(tmp_path, value):
    p = run_server(*listen_args(tmp_path), "--egress-max-connections", value)
    assert p.returncode == 2, p
    assert "--egress-max-connections must be a number from 1 to 65536" in p.stderr, p.stderr
    assert "listening" not in p.stdout


@pytest.mark.parametrize("value", ["yes", "0", "", "ON"])
def test_bad_egress_splice_refuses_to_start(tmp_path, value):
    p = run_server(*listen_args(tmp_path), "--egress-splice", value)
    assert p.returncode == 2, p
    assert f"--egress-splice must be `on` or `off`, not `{value}`" in p.stderr, p.stderr
    assert "listening" not in p.stdout


@pytest.mark.parametrize("text,mention", [
    pytest.param("127.0.0.1 ok.test\nbogus name.test\n", ":2: not an address: bogus",
                 id="not-an-address"),
    pytest.param("# comment\n\n127.0.0.1\n", ":3: an address without a name", id="no-name"),
    pytest.param("127.0.0.1 bad..name\n", ":1: bad..name: empty label in the host name",
                 id="bad-name"),
    pytest.param("127.0.0.1 *.wild.test\n", ":1: *.wild.test: '*' is allowed only",
                 id="wildcard"),
    pytest.param("10.0.0.0/8 net.test\n", ":1: not an address: 10.0.0.0/8", id="network"),
    pytest.param("#" * (1 << 20) + "\n", ": larger than 1 MiB", id="too-big"),
])
def test_bad_egress_hosts_file_refuses_to_start(tmp_path, text, mention):
    hosts = tmp_path / "extra-hosts"
    hosts.write_text(text)
    p = run_server(*listen_args(tmp_path), "--egress-hosts", hosts)
    assert p.returncode != 0, p
    assert f"--egress-hosts: {hosts}{mention}" in p.stderr, p.stderr
    assert "listening" not in p.stdout


def test_missing_egress_hosts_file_refuses_to_start(tmp_path):
    missing = tmp_path / "no-such-hosts"
    p = run_server(*listen_args(tmp_path), "--egress-hosts", missing)
    assert p.returncode != 0, p
    assert "--egress-hosts" in p.stderr and str(missing) in p.stderr, p.stderr
    assert "listening" not in p.stdout


def test_good_egress_flags_start(server, tmp_path):
    hosts = tmp_path / "extra-hosts"
    hosts.write_text("# split-horizon names\n127.0.0.1 local.test  Echo.Test.\n"
                     "::1\tlocal.test\n203.0.113.7 api.example.com # a comment\n")
    srv = server("--egress-hosts", hosts, "--egress-max-connections", "65536",
                 "--default-egress", "")
    r = put(srv, unique("ok"), fn_body())
    assert r.status_code == 201, r.text
    assert r.json()["egress"] == []
    srv.stop()
    srv.extra_args = ["--egress-max-connections", "1"]
    srv.start()
