"""The console's Code tab in headless Chromium: a function deployed from a
folder (nested files, an executable, a symlink) shows its package's
digest and its files a page at a time with sizes and modes, and its
Download button saves the zip, fetched with the bearer token, into
Chromium's download folder: the same bytes GET /v1/functions/{name}/code
answers, holding the deployed files. The fixtures are test_console_ui's:
after each test no request may have left the server's origin and the
browser's console must hold no error."""

import io
import os
import stat
import zipfile

import pytest
import requests

from conftest import unique
from test_console_ui import AUTH, artifacts, browser, cli, console, srv  # noqa: F401 (fixtures)

# More files than one page of the tab (50) holds.
MANY = 60


@pytest.fixture(scope="module")
def packaged(srv, tmp_path_factory):  # noqa: F811
    folder = tmp_path_factory.mktemp("code") / "fn"
    (folder / "lib/deep").mkdir(parents=True)
    (folder / "bin").mkdir()
    (folder / "app.py").write_text("def handler(event, context):\n    return event\n")
    (folder / "lib/deep/big.bin").write_bytes(bytes(range(256)) * 12)  # 3 KiB
    (folder / "bin/run.sh").write_text("#!/bin/sh\necho hi\n")
    (folder / "bin/run.sh").chmod(0o755)
    os.symlink("lib/deep/big.bin", folder / "link.bin")
    for i in range(MANY):
        (folder / "lib" / f"m{i:02d}.py").write_text(f"N = {i}\n")
    name = unique("console-code")
    cli(srv, "deploy", name, str(folder), "--runtime", "python3", "--handler", "app.handler")
    fn = requests.get(f"{srv.url}/v1/functions/{name}", headers=AUTH, timeout=60).json()
    return name, folder, fn


def folder_tree(folder):
    """What the package should hold: {path: (type, mode, bytes or target)}."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            p = os.path.join(root, d)
            out[os.path.relpath(p, folder)] = ("dir", 0o755, None)
        for f in files:
            p = os.path.join(root, f)
            rel = os.path.relpath(p, folder)
            if os.path.islink(p):
                out[rel] = ("symlink", 0o777, os.readlink(p))
            else:
                mode = 0o755 if os.stat(p).st_mode & 0o111 else 0o644
                out[rel] = ("file", mode, open(p, "rb").read())
    return out


def zip_tree(data):
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            mode = info.external_attr >> 16
            path = info.filename.rstrip("/")
            if stat.S_ISLNK(mode):
                out[path] = ("symlink", 0o777, z.read(info).decode())
            elif info.filename.endswith("/"):
                out[path] = ("dir", stat.S_IMODE(mode), None)
            else:
                out[path] = ("file", stat.S_IMODE(mode), z.read(info))
    return out


def rows(console):
    return [r.text for r in console.all("table.code-files tbody tr")]


def test_the_code_tab_lists_the_files_and_downloads_the_package(srv, console, packaged, artifacts,
                                                                tmp_path):  # noqa: F811
    name, folder, fn = packaged
    want = folder_tree(folder)
    console.go(srv.url, f"#/functions/{name}/code")
    console.wait_text("#code-sha", fn["code_sha256"])
    console.wait_text("#code-count", f"{len(want)} entries")
    console.wait("the first page of files", lambda: len(rows(console)) == 50)
    first = rows(console)
    text = "\n".join(first)
    assert f"app.py file 0644 {len(want['app.py'][2])} B" in text
    assert "bin/ dir 0755 –" in text
    assert f"bin/run.sh file 0755 {len(want['bin/run.sh'][2])} B" in text
    assert "lib/deep/big.bin file 0644 3.0 KiB" in text
    console.screenshot(artifacts, "function-code")

    # The second page holds the rest, the symlink with its target.
    console.wait_css("#code-next").click()
    console.wait("the second page", lambda: rows(console) and rows(console) != first)
    second = rows(console)
    assert len(first) + len(second) == len(want)
    assert any("link.bin → lib/deep/big.bin symlink 0777 16 B" in r for r in second), second
    listed = [r.split(" ")[0].rstrip("/") for r in first + second]
    assert sorted(listed) == sorted(want)
    console.wait_css("#code-prev").click()
    console.wait("the first page again", lambda: rows(console) == first)

    # The download goes to the folder Chromium saves into.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    console.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                   {"behavior": "allow", "downloadPath": str(downloads)})
    console.wait_css("#code-download").click()
    console.wait_text("#code-download-status", f"Saved {name}.zip")
    saved = downloads / f"{name}.zip"
    console.wait(f"{saved} on disk", lambda: saved.exists() and not list(downloads.glob("*.crdownload")))
    body = requests.get(f"{srv.url}/v1/functions/{name}/code", headers=AUTH, timeout=60).content
    assert saved.read_bytes() == body
    assert zip_tree(body) == want
