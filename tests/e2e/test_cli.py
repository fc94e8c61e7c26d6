"""The mayfly CLI against a real server: deploy (a folder or a .zip), ls,
get, rm, and the exit codes and messages a script relies on."""

import json
import os
import re

import pytest
import requests

from conftest import PY_HANDLER, free_port, make_zip, run_cli, sha256_hex

DEPLOYED = re.compile(
    r"^deployed (?P<name>\S+) version (?P<version>\d+) "
    r"\(code sha256 (?P<sha>[0-9a-f]{6,64})\S*, (?P<how>created|updated)\)$"
)


@pytest.fixture
def app_dir(tmp_path):
    """A function folder with an executable, a subfolder and a symlink."""
    d = tmp_path / "app"
    (d / "lib").mkdir(parents=True)
    (d / "app.py").write_text(PY_HANDLER)
    (d / "lib" / "util.py").write_text("X = 1\n")
    tool = d / "tool.sh"
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    (d / "lib" / "app-link.py").symlink_to("../app.py")
    return d


def deployed(proc):
    assert proc.returncode == 0, f"rc={proc.returncode} stderr={proc.stderr}"
    m = DEPLOYED.match(proc.stdout.strip())
    assert m, f"unexpected deploy output: {proc.stdout!r}"
    return m


def fetch(srv, name):
    r = requests.get(f"{srv.url}/v1/functions/{name}", timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_deploy_a_folder_keeps_exec_bits_and_symlinks(shared_server, app_dir):
    p = shared_server.cli("deploy", "from-dir", app_dir, "--runtime", "python3",
                          "--handler", "app.handler", "--memory", "256", "--timeout", "5",
                          "--env", "A=1", "--env", "B=x=y", "--max-concurrency", "4",
                          "--tmp-mb", "32")
    m = deployed(p)
    assert m["name"] == "from-dir" and m["version"] == "1" and m["how"] == "created"

    fn = fetch(shared_server, "from-dir")
    assert fn["code_sha256"].startswith(m["sha"])
    assert (fn["memory_mb"], fn["timeout_s"], fn["max_concurrency"], fn["tmp_mb"]) == (
        256, 5, 4, 32)
    assert fn["env"] == {"A": "1", "B": "x=y"}
    assert fn["handler"] == "app.handler" and fn["runtime"] == "python3"

    root = shared_server.code_dir(fn["code_sha256"])
    assert (root / "app.py").read_text() == PY_HANDLER
    assert (root / "lib" / "util.py").read_text() == "X = 1\n"
    assert os.stat(root / "tool.sh").st_mode & 0o111 == 0o111, "the x bit was lost"
    assert os.stat(root / "app.py").st_mode & 0o111 == 0
    link = root / "lib" / "app-link.py"
    assert link.is_symlink() and os.readlink(link) == "../app.py"


def test_deploy_update_says_updated_and_keeps_settings(shared_server, app_dir):
    deployed(shared_server.cli("deploy", "redeploy", app_dir, "--runtime", "python3",
                               "--handler", "app.handler", "--memory", "512"))
    m = deployed(shared_server.cli("deploy", "redeploy", app_dir, "--timeout", "9"))
    assert m["how"] == "updated" and m["version"] == "2"
    fn = fetch(shared_server, "redeploy")
    assert fn["memory_mb"] == 512 and fn["timeout_s"] == 9


def test_deploy_a_zip_sends_it_as_is(shared_server, tmp_path):
    code = make_zip({"app.py": PY_HANDLER})
    z = tmp_path / "code.zip"
    z.write_bytes(code)
    m = deployed(shared_server.cli("deploy", "from-zip", z, "--runtime", "python3.12",
                                   "--handler", "app.handler"))
    assert m["how"] == "created"
    fn = fetch(shared_server, "from-zip")
    assert fn["code_sha256"] == sha256_hex(code)
    assert fn["runtime"] == "python3"


def test_ls_get_rm(shared_server, app_dir):
    deployed(shared_server.cli("deploy", "lsfn", app_dir, "--runtime", "python3",
                               "--handler", "app.handler"))

    p = shared_server.cli("ls")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "RUNTIME", "MEMORY", "TIMEOUT", "VERSION", "UPDATED"]
    row = next((line.split() for line in lines[1:] if line.split()[0] == "lsfn"), None)
    assert row is not None, p.stdout
    assert row[1] == "python3" and "128" in row[2] and "3" in row[3] and row[4] == "1"

    p = shared_server.cli("ls", "--json")
    assert p.returncode == 0, p.stderr
    assert "lsfn" in {f["name"] for f in json.loads(p.stdout)["functions"]}

    p = shared_server.cli("get", "lsfn")
    assert p.returncode == 0, p.stderr
    fn = json.loads(p.stdout)
    assert fn == fetch(shared_server, "lsfn")
    assert '\n  "name": "lsfn"' in p.stdout, "get should pretty-print with an indent of 2"

    p = shared_server.cli("rm", "lsfn")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "deleted lsfn"
    assert requests.get(f"{shared_server.url}/v1/functions/lsfn").status_code == 404

    p = shared_server.cli("get", "lsfn")
    assert p.returncode == 1
    assert "mayfly: " in p.stderr and "not_found" in p.stderr and "HTTP 404" in p.stderr
    assert "lsfn" in p.stderr
    assert p.stdout == ""


def test_mayfly_url_may_end_with_a_slash(shared_server):
    p = run_cli(shared_server.url + "/", "ls")
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["deploy"],
        ["deploy", "only-name"],
        ["deploy", "x", "{dir}", "--memory", "abc"],
        ["deploy", "x", "{dir}", "--timeout", "1.5"],
        ["deploy", "x", "{dir}", "--max-concurrency", "ten"],
        ["deploy", "x", "{dir}", "--env", "NOEQUALS"],
        ["deploy", "x", "{dir}", "--bogus"],
        ["deploy", "x", "{dir}", "--runtime"],
        ["deploy", "x", "{dir}", "extra"],
        ["get"],
        ["get", "a", "b"],
        ["rm"],
        ["rm", "--bogus", "x"],
        ["ls", "--bogus"],
        ["ls", "extra"],
        ["no-such-command"],
        [],
    ],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_bad_usage_exits_2_with_usage_on_stderr(shared_server, app_dir, args):
    args = [str(app_dir) if a == "{dir}" else a for a in args]
    p = shared_server.cli(*args)
    assert p.returncode == 2, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    assert "usage" in p.stderr.lower()
    assert p.stdout == ""


def test_bad_usage_names_the_problem(shared_server, app_dir):
    p = shared_server.cli("deploy", "x", app_dir, "--memory", "abc")
    assert "--memory" in p.stderr and "abc" in p.stderr
    p = shared_server.cli("deploy", "x", app_dir, "--bogus")
    assert "--bogus" in p.stderr
    p = shared_server.cli("deploy", "x", app_dir, "--env", "NOEQUALS")
    assert "NOEQUALS" in p.stderr


def test_deploy_a_missing_path_exits_1(shared_server, tmp_path):
    missing = tmp_path / "nope"
    p = shared_server.cli("deploy", "x", missing, "--runtime", "python3")
    assert p.returncode == 1, p.stderr
    assert p.stderr.strip() == (
        f"mayfly deploy: cannot read `{missing}`: No such file or directory"
    )


def test_server_errors_exit_1_with_the_message(shared_server, app_dir):
    p = shared_server.cli("rm", "never-existed")
    assert p.returncode == 1
    assert re.search(r"^mayfly: .*never-existed.* \(not_found, HTTP 404\)$", p.stderr.strip()), \
        p.stderr

    p = shared_server.cli("deploy", "badrt", app_dir, "--runtime", "cobol")
    assert p.returncode == 1
    assert "runtime" in p.stderr and "(bad_request, HTTP 400)" in p.stderr

    p = shared_server.cli("deploy", "nort", app_dir)
    assert p.returncode == 1
    assert "runtime" in p.stderr, "creating without --runtime should say runtime is required"

    p = shared_server.cli("deploy", "badmem", app_dir, "--runtime", "python3",
                          "--handler", "app.handler", "--memory", "64")
    assert p.returncode == 1
    assert "memory_mb" in p.stderr


def test_unreachable_server_exits_1(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["ls"], ["get", "x"], ["rm", "x"]):
        p = run_cli(url, *args)
        assert p.returncode == 1, p
        assert f"mayfly: cannot reach the mayfly server at {url}" in p.stderr


def test_a_stopped_server_exits_1_with_cannot_reach(server):
    srv = server()
    assert srv.cli("ls").returncode == 0
    srv.stop()
    p = srv.cli("ls")
    assert p.returncode == 1
    assert p.stderr.startswith(f"mayfly: cannot reach the mayfly server at {srv.url}: "), p.stderr


def test_mayfly_token_is_sent_as_bearer(server, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("AKIDCLI s3cr3t\n")
    srv = server("--keys", keys)
    p = srv.cli("ls")
    assert p.returncode == 1, "a server with keys accepted a CLI call without a token"
    assert "HTTP 401" in p.stderr
    p = srv.cli("ls", env={"MAYFLY_TOKEN": "AKIDCLI:s3cr3t"})
    assert p.returncode == 0, p.stderr
    p = srv.cli("ls", env={"MAYFLY_TOKEN": "AKIDCLI:wrong"})
    assert p.returncode == 1


@pytest.mark.parametrize("cmd", ["deploy", "ls", "get", "rm", "server"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_exits_0_with_usage_on_stdout(cmd, flag):
    p = run_cli("http://127.0.0.1:1", cmd, flag, timeout=10)
    assert p.returncode == 0, p.stderr
    assert "usage" in p.stdout.lower()
    assert cmd in p.stdout


def test_top_level_help():
    p = run_cli("http://127.0.0.1:1", "--help", timeout=10)
    assert p.returncode == 0
    out = p.stdout.lower()
    assert "usage" in out
    for cmd in ("server", "deploy", "ls", "get", "rm"):
        assert cmd in out


def test_deploy_help_lists_every_option():
    p = run_cli("http://127.0.0.1:1", "deploy", "--help", timeout=10)
    for opt in ("--runtime", "--handler", "--memory", "--timeout", "--env",
                "--max-concurrency", "--tmp-mb"):
        assert opt in p.stdout


def test_deployed_folder_is_a_stable_package(shared_server, app_dir):
    """Deploying the same folder twice sends the same package, so the
    server sees no new code."""
    a = deployed(shared_server.cli("deploy", "stable", app_dir, "--runtime", "python3",
                                   "--handler", "app.handler"))
    b = deployed(shared_server.cli("deploy", "stable", app_dir))
    assert a["sha"] == b["sha"]

