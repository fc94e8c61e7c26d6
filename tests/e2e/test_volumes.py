"""Shared volumes (docs/state.md): a persistent, size-limited file system
that every instance of every function mounting it shares, as Lambda
functions share EFS. Created with PUT /v1/volumes/NAME, mounted by a
function at /mnt/NAME through its `volumes` setting (with the permission
volume:NAME), kept across restarts, bounded by its size inside the
function and never beyond it on the host."""

import glob
import json
import os
import re
import signal
from pathlib import Path

import pytest
import requests

from conftest import (ECHO_PY, assert_error, deploy, deploy_py, healthy, invoke, invoke_ok,
                      metric, metrics, unique, wait_for)

# One function does what the event says on its volume at /mnt/shared, and
# answers with what happened (an OSError as its errno, so the test can
# tell ENOSPC from EROFS).
VOLUME_PY = r"""
import errno, os
def handler(event, context):
    root = event.get("root", "/mnt/shared")
    path = os.path.join(root, event.get("file", "f"))
    op = event["op"]
    try:
        if op == "write":
            with open(path, "w") as f:
                f.write(event["data"])
            st = os.stat(path)
            return {"uid": os.getuid(), "owner": st.st_uid, "mode": oct(st.st_mode & 0o777)}
        if op == "read":
            with open(path) as f:
                return {"data": f.read()}
        if op == "fill":
            n = 0
            with open(path, "wb") as f:
                while n < event["max_mb"]:
                    f.write(b"x" * (1 << 20))
                    n += 1
                f.flush()
                os.fsync(f.fileno())
            return {"errno": 0, "mb": n}
        if op == "rm":
            os.unlink(path)
            return {"removed": True}
        if op == "ls":
            st = os.stat(root)
            return {"files": sorted(os.listdir(root)), "owner": st.st_uid, "uid": os.getuid()}
        if op == "zygote":
            with open("/proc/self/environ", "rb") as f:
                return {"zygote": b"MAYFLY_ZYGOTE_FD=" in f.read()}
    except OSError as e:
        return {"errno": e.errno, "error": str(e), "mb": locals().get("n")}
"""

READ_JS = r"""
const fs = require("fs");
exports.handler = async (event) => {
  return { data: fs.readFileSync("/mnt/shared/" + event.file, "utf8"), uid: process.getuid() };
};
"""


def put_volume(srv, name, size_mb, expect=(200, 201)):
    r = requests.put(f"{srv.url}/v1/volumes/{name}", json={"size_mb": size_mb}, timeout=120)
    if expect:
        assert r.status_code in expect, f"PUT volume {name}: HTTP {r.status_code} {r.text}"
    return r


def get_volume(srv, name):
    r = requests.get(f"{srv.url}/v1/volumes/{name}", timeout=30)
    assert r.status_code == 200, f"GET volume {name}: HTTP {r.status_code} {r.text}"
    return r.json()


def mounting(volume, path="/mnt/shared", read_only=False):
    """The settings of a function that mounts volume at path."""
    return {"permissions": [f"volume:{volume}"],
            "volumes": [{"name": volume, "path": path, "read_only": read_only}]}


def deploy_on(srv, name, volume, source=VOLUME_PY, **kw):
    return deploy_py(srv, name, source, **mounting(volume, **kw))


def call(srv, name, **event):
    return invoke_ok(srv, name, event).json()


def image(srv, volume):
    return srv.data_dir / "volumes" / f"{volume}.img"


def loop_devices_of(path):
    """The loop devices (as /sys names them) whose backing file is path."""
    want = os.path.realpath(path)
    found = []
    for f in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            backing = Path(f).read_text().strip()
        except OSError:
            continue
        if backing == want or backing == want + " (deleted)":
            found.append(f.split("/")[3])
    return found


def host_mounts_under(path):
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(path) in line]


def pool_ready(srv, kind):
    """Sandboxes of a kind waiting ready, from /metrics."""
    text = requests.get(f"{srv.url}/metrics", timeout=10).text
    m = re.search(r'^mayfly_sandbox_pool_ready\{kind="%s"\} (\d+)$' % kind, text, re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def srv(module_server_factory):
    """A server with prepared sandboxes and zygotes (the default), whose
    cold starts take them. Should a prepared sandbox fail to take a
    function's volumes, the server would quietly make one the slow way:
    its debug log says so, and that fails the module."""
    s = module_server_factory("--log-level", "debug")
    wait_for("the zygotes to be ready",
             lambda: pool_ready(s, "python3") >= 1 and pool_ready(s, "nodejs") >= 1,
             timeout=120)
    yield s
    assert "pooled sandbox not usable" not in s.stderr(), s.logs()


# ---------------------------------------------------------------- sharing


@pytest.fixture(scope="module")
def direct_srv(module_server_factory):
    """No prepared sandboxes, no zygotes: every sandbox is made from
    scratch, the other way volumes reach a sandbox."""
    return module_server_factory("--sandbox-pool", "0", "--zygotes", "0")


@pytest.mark.parametrize("which", ["pooled", "direct"])
def test_two_functions_share_files(which, srv, direct_srv):
    s = srv if which == "pooled" else direct_srv
    vol = unique("shared")
    put_volume(s, vol, 16)
    writer, reader, node = unique("writer"), unique("reader"), unique("node-reader")
    deploy_on(s, writer, vol)
    deploy_on(s, reader, vol)
    deploy(s, node, {"index.js": READ_JS}, runtime="nodejs", handler="index.handler",
           **mounting(vol))

    # On the pooled server, a zygote (a runtime started ahead) takes the
    # function and its volume.
    assert call(s, writer, op="zygote") == {"zygote": which == "pooled"}
    w = call(s, writer, op="write", file="greeting", data="hello from the writer")
    # Each sandbox runs as a uid of its own and sees the volume's files as
    # its own, so that another function can change them.
    assert w["owner"] == w["uid"], w
    assert call(s, reader, op="read", file="greeting") == {"data": "hello from the writer"}
    out = call(s, node, file="greeting")
    assert out["data"] == "hello from the writer"
    r = call(s, reader, op="write", file="greeting", data="rewritten by the reader")
    assert r["owner"] == r["uid"] and r["uid"] != w["uid"], (w, r)
    assert call(s, writer, op="read", file="greeting") == {"data": "rewritten by the reader"}
    listing = call(s, writer, op="ls")
    assert listing["files"] == ["greeting"], listing
    assert listing["owner"] == listing["uid"], listing

    # Every instance of a function sees it too: two calls at once need
    # two instances.
    slow = unique("slow-reader")
    deploy_on(s, slow, vol, source="import time\n" + VOLUME_PY.replace(
        "    op = event[\"op\"]", "    time.sleep(event.get(\"sleep\", 0))\n    op = event[\"op\"]"))
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(lambda _: invoke_ok(s, slow, {"op": "read", "file": "greeting",
                                                            "sleep": 1}).json(), range(2)))
    assert outs == [{"data": "rewritten by the reader"}] * 2

    # The volume names the functions that mount it.
    got = get_volume(s, vol)
    assert sorted(got["functions"]) == sorted([writer, reader, node, slow])
    healthy(s)


def test_volume_json_and_list(srv):
    vol = unique("listed")
    r = put_volume(srv, vol, 4)
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["name"] == vol and v["size_mb"] == 4 and v["functions"] == []
    assert isinstance(v["used_bytes"], int) and 0 <= v["used_bytes"] < 4 << 20
    assert v["created"].endswith("Z")
    # The same size again: there it is, unchanged.
    again = put_volume(srv, vol, 4)
    assert again.status_code == 200 and again.json()["created"] == v["created"]
    listed = requests.get(f"{srv.url}/v1/volumes", timeout=30).json()["volumes"]
    assert vol in [x["name"] for x in listed]
    assert [x["name"] for x in listed] == sorted(x["name"] for x in listed)
    # Resizing is not supported (yet): the answer says so.
    assert_error(put_volume(srv, vol, 8, expect=None), 409, "conflict", "resiz")


# ---------------------------------------------------------------- limits


def test_size_limit_holds_inside_and_on_the_host(srv):
    vol = unique("small")
    size_mb = 8
    put_volume(srv, vol, size_mb)
    filler, bystander = unique("filler"), unique("bystander")
    deploy_on(srv, filler, vol)
    deploy_py(srv, bystander, ECHO_PY)

    out = call(srv, filler, op="fill", file="big", max_mb=64)
    assert out["errno"] == 28, out  # ENOSPC, inside the function
    assert out["mb"] < size_mb, out
    # The host gave the image no more than its size, and nothing else
    # filled up: the server and its other functions carry on.
    st = os.stat(image(srv, vol))
    assert st.st_size == size_mb << 20
    assert st.st_blocks * 512 <= size_mb << 20, st
    healthy(srv)
    assert invoke_ok(srv, bystander, {"ok": 1}).json() == {"echo": {"ok": 1}}
    used = get_volume(srv, vol)["used_bytes"]
    assert used > (size_mb - 3) << 20, used

    # The space comes back when the file goes.
    assert call(srv, filler, op="rm", file="big") == {"removed": True}
    assert call(srv, filler, op="write", file="small", data="fits")["owner"] > 0
    wait_for("the freed space to show", lambda: get_volume(srv, vol)["used_bytes"] < used)


@pytest.mark.parametrize("which", ["pooled", "direct"])
def test_a_file_may_outgrow_tmp(which, srv, direct_srv):
    """The file-size limit that makes a runaway write to /tmp fail follows
    the volume: a file there may be as large as the volume."""
    s = srv if which == "pooled" else direct_srv
    vol = unique("roomy")
    put_volume(s, vol, 64)
    fn = unique("roomy-fn")
    deploy_py(s, fn, VOLUME_PY, tmp_mb=16, **mounting(vol))
    assert call(s, fn, op="fill", file="large", max_mb=40) == {"errno": 0, "mb": 40}
    # /tmp keeps its own bound.
    out = call(s, fn, op="fill", root="/tmp", file="large", max_mb=40)
    assert out["errno"] in (27, 28), out  # EFBIG or ENOSPC


SPARSE_PY = r"""
import os
def handler(event, context):
    path = "/mnt/shared/sparse"
    with open("/proc/self/environ", "rb") as f:
        if event.get("zygote"):
            return b"MAYFLY_ZYGOTE_FD=" in f.read()
    try:
        with open(path, "wb") as f:
            f.seek(event["offset"])
            f.write(b"x")
    except OSError as e:
        return {"errno": e.errno}
    return {"size": os.stat(path).st_size, "blocks": os.stat(path).st_blocks}
"""


@pytest.mark.parametrize("which", ["pooled", "direct"])
def test_a_file_may_pass_ten_gib_on_a_larger_volume(which, srv, direct_srv):
    """Even a runtime started ahead of its function (a zygote), before its
    volumes were known, may write a file as large as its volume: a sparse
    file past 10 GiB, which costs no disk."""
    s = srv if which == "pooled" else direct_srv
    vol = unique("huge")
    put_volume(s, vol, 12 << 10)
    fn = unique("sparse")
    deploy_py(s, fn, SPARSE_PY, **mounting(vol))
    if which == "pooled":
        wait_for("a python3 zygote", lambda: pool_ready(s, "python3") >= 1, timeout=120)
    assert call(s, fn, zygote=True) is (which == "pooled")
    offset = 11 << 30
    out = call(s, fn, offset=offset)
    assert out.get("size") == offset + 1, out
    assert os.stat(image(s, vol)).st_blocks * 512 < 1 << 30


def test_read_only_mount_refuses_writes(srv):
    vol = unique("ro")
    put_volume(srv, vol, 4)
    writer, reader = unique("rw"), unique("ro-reader")
    deploy_on(srv, writer, vol)
    deploy_on(srv, reader, vol, read_only=True)
    call(srv, writer, op="write", file="doc", data="read me")
    assert call(srv, reader, op="read", file="doc") == {"data": "read me"}
    out = call(srv, reader, op="write", file="doc", data="no")
    assert out["errno"] == 30, out  # EROFS
    out = call(srv, reader, op="write", file="new", data="no")
    assert out["errno"] == 30, out
    assert call(srv, writer, op="read", file="doc") == {"data": "read me"}


def test_metrics_show_size_and_use(srv):
    vol = unique("metered")
    put_volume(srv, vol, 8)
    fn = unique("metered-fn")
    deploy_on(srv, fn, vol)
    m = metrics(srv)
    size = metric(m, "mayfly_volume_size_bytes", volume=vol)
    before = metric(m, "mayfly_volume_used_bytes", volume=vol)
    assert 0 < size <= 8 << 20, size
    call(srv, fn, op="fill", file="two", max_mb=2)
    after = metric(metrics(srv), "mayfly_volume_used_bytes", volume=vol)
    assert after >= before + (2 << 20), (before, after)


# ---------------------------------------------------------------- lifetime


def test_data_survives_a_restart_and_nothing_stays_mounted(server):
    srv = server()
    vol = unique("durable")
    put_volume(srv, vol, 8)
    fn = unique("durable-fn")
    deploy_on(srv, fn, vol)
    call(srv, fn, op="write", file="kept", data="across restarts")
    img = image(srv, vol)
    assert loop_devices_of(img), "the volume is not on a loop device"
    # The server's mounts are its own: the host does not see them.
    assert not host_mounts_under(srv.data_dir), host_mounts_under(srv.data_dir)

    srv.stop()
    # Stopped: no mount left, and the loop device released.
    assert not host_mounts_under(srv.data_dir)
    assert not loop_devices_of(img), loop_devices_of(img)

    srv.start()
    assert call(srv, fn, op="read", file="kept") == {"data": "across restarts"}
    got = get_volume(srv, vol)
    assert got["size_mb"] == 8 and got["mounted"] is True and got["functions"] == [fn]

    # Killed, not stopped: its mounts go with it (its idle instance, held
    # frozen, goes when the next server clears what the dead one left),
    # and the next start mounts the volume again, once, data intact.
    srv.send_signal(signal.SIGKILL)
    srv.proc.wait(60)
    srv.start()
    assert call(srv, fn, op="read", file="kept") == {"data": "across restarts"}
    assert len(loop_devices_of(img)) == 1, loop_devices_of(img)
    srv.stop()
    assert not loop_devices_of(img)
    assert not host_mounts_under(srv.data_dir)


def test_deleting_a_mounted_volume_is_refused_until_no_function_mounts_it(srv):
    vol = unique("doomed")
    put_volume(srv, vol, 4)
    a, b = unique("user-a"), unique("user-b")
    deploy_on(srv, a, vol)
    deploy_on(srv, b, vol)
    call(srv, a, op="write", file="x", data="1")
    r = requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=30)
    assert_error(r, 409, "conflict", a, b)
    assert image(srv, vol).exists()

    # One drops it by an update (a field left out keeps its value: the
    # update says volumes []), the other is deleted.
    deploy_py(srv, a, VOLUME_PY, volumes=[])
    r = requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=30)
    assert_error(r, 409, "conflict", b)
    assert requests.delete(f"{srv.url}/v1/functions/{b}", timeout=30).status_code == 204
    r = requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=60)
    assert r.status_code == 204, r.text
    assert_error(requests.get(f"{srv.url}/v1/volumes/{vol}", timeout=30), 404, "not_found", vol)
    assert_error(requests.delete(f"{srv.url}/v1/volumes/{vol}", timeout=30), 404, "not_found")
    assert not image(srv, vol).exists()
    # A volume of the same name starts empty.
    put_volume(srv, vol, 4)
    deploy_on(srv, a, vol)
    assert call(srv, a, op="ls")["files"] == []


# ---------------------------------------------------------------- refusals


def test_a_function_naming_a_missing_volume_is_refused(srv):
    name, vol = unique("orphan"), unique("missing")
    r = requests.put(f"{srv.url}/v1/functions/{name}",
                     json={**_body(), **mounting(vol)}, timeout=60)
    msg = assert_error(r, 400, "bad_request", "volumes[0].name", f"no volume named {vol}")
    assert f"PUT /v1/volumes/{vol}" in msg
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).status_code == 404
    # On an update too, and the function stays as it was.
    deploy_py(srv, name, ECHO_PY)
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=mounting(vol), timeout=60)
    assert_error(r, 400, "bad_request", "volumes[0].name", vol)
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=30).json()["volumes"] == []


def test_a_function_without_the_permission_is_refused(srv):
    vol = unique("guarded")
    put_volume(srv, vol, 4)
    name = unique("no-perm")
    body = {**_body(), "volumes": [{"name": vol, "path": "/mnt/guarded"}]}
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)
    assert_error(r, 400, "bad_request", "volumes[0]", f"volume:{vol}")
    body["permissions"] = ["volume:someone-else"]
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)
    assert_error(r, 400, "bad_request", f"volume:{vol}")
    # A wildcard grants it.
    body["permissions"] = ["volume:*"]
    r = requests.put(f"{srv.url}/v1/functions/{name}", json=body, timeout=60)
    assert r.status_code == 201, r.text


def _body():
    from conftest import b64, make_zip
    return {"runtime": "python3", "handler": "app.handler",
            "code": {"zip_base64": b64(make_zip({"app.py": VOLUME_PY}))}}


@pytest.mark.parametrize("name,body,status,mentions", [
    ("bad.name", {"size_mb": 4}, 400, ["name"]),
    ("a" * 65, {"size_mb": 4}, 400, ["name"]),
    ("ok-name", {}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": 0}, 400, ["size_mb", "1048576"]),
    ("ok-name", {"size_mb": 1048577}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": -5}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": "8"}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": 8.5}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": True}, 400, ["size_mb"]),
    ("ok-name", {"size_mb": 8, "encrypted": True}, 400, ["encrypted", "unknown field"]),
    ("ok-name", [8], 400, ["body"]),
])
def test_bad_inputs_name_the_field(srv, name, body, status, mentions):
    r = requests.put(f"{srv.url}/v1/volumes/{name}", data=json.dumps(body), timeout=30)
    assert_error(r, status, "bad_request", *mentions)
    # Nothing was made.
    assert requests.get(f"{srv.url}/v1/volumes/ok-name", timeout=30).status_code == 404
    assert not (srv.data_dir / "volumes" / "ok-name.img").exists()


def test_bodies_that_are_not_json(srv):
    for raw in (b"", b"size_mb=8", b"{\"size_mb\": 8", b"\xff\xfe"):
        r = requests.put(f"{srv.url}/v1/volumes/raw", data=raw, timeout=30)
        assert_error(r, 400, "bad_request", "body")
    assert_error(requests.get(f"{srv.url}/v1/volumes/nope-{os.urandom(3).hex()}", timeout=30),
                 404, "not_found", "no volume named")
    assert_error(requests.get(f"{srv.url}/v1/volumes/bad.name", timeout=30), 400,
                 "bad_request", "name")


# ---------------------------------------------------------------- CLI


def test_cli_create_ls_rm(srv):
    vol = unique("cli")
    r = srv.cli("volume", "create", vol, "--size-mb", "4")
    assert r.returncode == 0, r.stderr
    assert f"created volume {vol}" in r.stdout
    r = srv.cli("volume", "create", vol, "--size-mb", "4")
    assert r.returncode == 0 and "exists" in r.stdout, (r.stdout, r.stderr)
    r = srv.cli("volume", "create", vol, "--size-mb", "5")
    assert r.returncode == 1 and "resiz" in r.stderr, (r.stdout, r.stderr)

    fn = unique("cli-fn")
    deploy_on(srv, fn, vol)
    r = srv.cli("volume", "ls")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE_MB", "USED", "CREATED", "FUNCTIONS"]
    row = next(line for line in lines if line.startswith(vol + " "))
    assert row.split()[1] == "4" and row.split()[-1] == fn, row
    r = srv.cli("volume", "ls", "--json")
    assert vol in [v["name"] for v in json.loads(r.stdout)["volumes"]]

    r = srv.cli("volume", "rm", vol)
    assert r.returncode == 1 and fn in r.stderr, (r.stdout, r.stderr)
    deploy_py(srv, fn, VOLUME_PY, volumes=[])
    r = srv.cli("volume", "rm", vol)
    assert r.returncode == 0 and f"deleted volume {vol}" in r.stdout, (r.stdout, r.stderr)
    r = srv.cli("volume", "rm", vol)
    assert r.returncode == 1 and "no volume named" in r.stderr


def test_cli_usage_errors(srv):
    for args in (["volume"], ["volume", "create", "x"], ["volume", "create", "x", "--size-mb",
                                                          "0"],
                 ["volume", "create", "x", "--size-mb", "big"], ["volume", "rm"],
                 ["volume", "frobnicate"], ["volume", "ls", "extra"]):
        r = srv.cli(*args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "usage: mayfly volume" in r.stderr
    r = srv.cli("volume", "--help")
    assert r.returncode == 0 and "create NAME --size-mb N" in r.stdout
    r = srv.cli("volume", "create", "bad.name", "--size-mb", "4")
    assert r.returncode == 1 and "name" in r.stderr
