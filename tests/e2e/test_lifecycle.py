"""Starting and stopping the server: signals, bad flags, a port or data
directory it cannot have, log formats, and the loopback-only rule of
development mode."""

import json
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import MAYFLY_BIN, free_port, fn_body

EXIT_TIMEOUT_S = 60  # a deadline for a server that hangs


def run_server(*args, env=None, timeout=EXIT_TIMEOUT_S):
    """Runs a server that is expected to refuse to start; fails the test if
    it is still running after timeout seconds."""
    proc = subprocess.Popen([MAYFLY_BIN, "server", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"server kept running; expected it to refuse to start.\n"
                    f"stdout: {out}\nstderr: {err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_exits_0(server):
    srv = server()
    assert f"mayfly listening on 127.0.0.1:{srv.port}" in srv.stdout()
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    srv.stop(signal.SIGTERM)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{srv.url}/healthz", timeout=2)


def test_sigint_exits_0(server):
    srv = server()
    srv.stop(signal.SIGINT)


def test_sigterm_with_an_open_idle_connection_exits_0(server):
    srv = server()
    with socket.create_connection(("127.0.0.1", srv.port)):
        srv.stop(signal.SIGTERM)


def test_env_vars_set_listen_and_data(server):
    srv = server(via_env=True)
    assert requests.get(f"{srv.url}/healthz", timeout=10).status_code == 200
    assert requests.put(f"{srv.url}/v1/functions/envdata", json=fn_body(),
                        timeout=30).status_code == 201
    assert (srv.data_dir / "code").is_dir(), "MAYFLY_DATA was not used"


def test_development_mode_warns_at_start(server):
    srv = server()
    err = srv.stderr()
    assert "WARN" in err and "development" in err.lower(), err


def test_bad_flag_exits_2_naming_it(tmp_path):
    p = run_server("--listen", f"127.0.0.1:{free_port()}", "--data", tmp_path / "d", "--bogus")
    assert p.returncode == 2, p
    assert "--bogus" in p.stderr
    assert "listening" not in p.stdout


@pytest.mark.parametrize("args,mention", [
    (["--log-format", "yaml"], "--log-format"),
    (["--log-level", "loud"], "--log-level"),
    (["--max-connections", "many"], "--max-connections"),
    (["--listen", "not-an-address"], "not-an-address"),
])
def test_bad_flag_value_exits_2_naming_it(tmp_path, args, mention):
    listen = [] if args[0] == "--listen" else ["--listen", f"127.0.0.1:{free_port()}"]
    p = run_server(*listen, "--data", tmp_path / "d", *args)
    assert p.returncode == 2, p
    assert mention in p.stderr


def test_port_in_use_exits_nonzero(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        p = run_server("--listen", f"127.0.0.1:{port}", "--data", tmp_path / "d")
    assert p.returncode != 0
    assert "in use" in p.stderr.lower(), p.stderr
    assert f"127.0.0.1:{port}" in p.stderr, "the message should name the address"


def test_data_dir_it_cannot_create_exits_nonzero(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("I am a file, not a folder")
    p = run_server("--listen", f"127.0.0.1:{free_port()}", "--data", blocker / "sub")
    assert p.returncode != 0
    assert str(blocker) in p.stderr, p.stderr


def test_second_server_on_the_same_data_dir_exits_nonzero(server):
    first = server()
    p = run_server("--listen", f"127.0.0.1:{free_port()}", "--data", first.data_dir)
    assert p.returncode != 0
    assert "in use" in p.stderr.lower(), p.stderr
    assert str(first.data_dir) in p.stderr, "the message should name the data directory"
    # The first server is unharmed.
    assert requests.get(f"{first.url}/healthz", timeout=10).status_code == 200
    first.stop()


def test_log_format_json(server):
    srv = server("--log-format", "json", "--log-level", "debug")
    requests.get(f"{srv.url}/healthz", timeout=10)
    srv.stop()
    lines = [line for line in srv.stderr().splitlines() if line.strip()]
    assert lines, "no log lines at all"
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON log line: {line!r}")
        assert isinstance(rec, dict)
        for key in ("time", "level", "component", "message"):
            assert key in rec, f"{key!r} missing from {line!r}"


def test_log_format_text_is_the_default(server):
    srv = server()
    first = srv.stderr().splitlines()[0]
    with pytest.raises(ValueError):
        json.loads(first)


def test_log_level_error_hides_the_warning(server):
    srv = server("--log-level", "error")
    assert "WARN" not in srv.stderr()


def test_public_listen_without_keys_is_refused(tmp_path):
    p = run_server("--listen", f"0.0.0.0:{free_port()}", "--data", tmp_path / "d")
    assert p.returncode != 0
    assert "loopback" in p.stderr.lower(), p.stderr
    assert "listening" not in p.stdout


def test_public_listen_with_keys_is_allowed(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("AKIDEXAMPLE wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY\n")
    port = free_port()
    out = tmp_path / "stdout"
    with open(out, "wb") as o, open(tmp_path / "stderr", "wb") as e:
        proc = subprocess.Popen([MAYFLY_BIN, "server", "--listen", f"0.0.0.0:{port}",
                                 "--data", str(tmp_path / "d"), "--keys", str(keys)],
                                stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while f"mayfly listening on 0.0.0.0:{port}" not in out.read_text():
            assert proc.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "no listening line"
            time.sleep(0.02)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(EXIT_TIMEOUT_S) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
