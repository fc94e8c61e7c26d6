"""Headless Chromium for the console's tests, through Debian's chromium and
chromium-driver with python3-selenium. Chromium runs with a profile in a
temporary folder (removed on quit) and keeps two logs the tests read: the
DevTools Network events (every request the page made, to check none left
the server's origin) and the browser's console."""

import json
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

# A deadline for a page that never shows what it should, not a timing check.
WAIT_S = 90


class Browser:
    def __init__(self, width=1280, height=800):
        self.profile = tempfile.mkdtemp(prefix="console-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--metrics-recording-only", "--no-pings",
                    "--disable-features=Translate,OptimizationHints,MediaRouter"):
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_window_size(width, height)
        self.requests = []  # every URL the page asked for (Network.requestWillBeSent)
        self.console = []  # the browser console's entries

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def drain_logs(self):
        """Moves what Chromium logged since the last call into self.requests
        and self.console."""
        for entry in self.driver.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg["method"] == "Network.requestWillBeSent":
                self.requests.append(msg["params"]["request"]["url"])
            elif msg["method"] == "Network.webSocketCreated":
                self.requests.append(msg["params"]["url"])
        self.console.extend(self.driver.get_log("browser"))

    def foreign_requests(self, origin):
        """The requests that went anywhere but origin."""
        self.drain_logs()
        want = urlsplit(origin)
        out = []
        for url in self.requests:
            u = urlsplit(url)
            # Chromium's own pages (its first tab's chrome://) and inline
            # data never touch the network.
            if u.scheme in ("data", "blob", "about", "chrome", "chrome-extension", "devtools"):
                continue
            if (u.scheme, u.netloc) != (want.scheme, want.netloc):
                out.append(url)
        return out

    def console_errors(self, allowed=()):
        """Console entries at level SEVERE, but those matching one of
        allowed (substrings of the message)."""
        self.drain_logs()
        return [e for e in self.console
                if e["level"] == "SEVERE" and not any(a in e["message"] for a in allowed)]

    def get(self, url):
        self.driver.get(url)

    def go(self, base, hash_path):
        """Follows a console link by setting the location's hash."""
        self.driver.execute_script("location.hash = arguments[0]", hash_path)
        return self.wait_css("main")

    def wait(self, what, fn, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                value = fn()
                if value:
                    return value
            except (StaleElementReferenceException, WebDriverException) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what} (last error: {last})\n"
                             f"page text:\n{self.text('body')[:3000]}")

    def wait_css(self, selector, timeout=WAIT_S):
        return self.wait(f"an element {selector}",
                         lambda: self.visible(selector), timeout)

    def visible(self, selector):
        for el in self.driver.find_elements(By.CSS_SELECTOR, selector):
            if el.is_displayed():
                return el
        return None

    def all(self, selector):
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self, selector):
        els = self.driver.find_elements(By.CSS_SELECTOR, selector)
        return "\n".join(e.text for e in els)

    def wait_text(self, selector, needle, timeout=WAIT_S):
        return self.wait(f"{needle!r} in {selector}",
                         lambda: needle in self.text(selector), timeout)

    def screenshot(self, folder, name):
        if folder is None:
            return None
        path = Path(folder) / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def set_size(self, width, height):
        self.driver.set_window_size(width, height)
