"""Open a report in headless Chromium and look at it as a person would: what it shows,
what the console says, what it tried to fetch, and a screenshot.

The Chrome DevTools Protocol is spoken over ``--remote-debugging-pipe`` (file descriptors
3 and 4, NUL-separated JSON), so no driver package, no websocket client and no network
port are needed: only Debian's ``chromium``. Used by the browser test and by
``evalkit report --screenshot``.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import EvalkitError

# Flags for a closed network: without the background-networking ones Chromium keeps
# trying to reach update and sync services, and those attempts are refused.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable, or None (``EVALKIT_CHROMIUM`` overrides)."""
    env = os.environ.get("EVALKIT_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageLoad:
    """What happened while a page loaded."""

    url: str
    console_errors: list[str] = field(default_factory=list)  # console.error, uncaught exceptions, CSP/log errors
    requests: list[str] = field(default_factory=list)  # every URL the page asked for (the page itself included)
    dialogs: list[str] = field(default_factory=list)  # alert()/confirm() messages: scripts that ran


class Chromium:
    """A headless Chromium session: ``with Chromium() as b: load = b.open(path)``."""

    def __init__(self, executable: str | None = None, width: int = 1400, height: int = 1000, timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise EvalkitError("no Chromium found (install Debian's chromium, or set EVALKIT_CHROMIUM)")
        self.width, self.height, self.timeout = width, height, timeout
        self._id = 0
        self._buf = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        self._profile = tempfile.mkdtemp(prefix="evalkit-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes replies
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._proc = subprocess.Popen(
            [self.executable, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            preexec_fn=wire_fds, close_fds=False, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except Exception:  # already gone
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol ---------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, session: bool = False) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise EvalkitError(f"Chromium: {method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise EvalkitError(f"Chromium did not answer within {self.timeout:.0f} s")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EvalkitError("Chromium exited unexpectedly")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def _event_until(self, until: float) -> dict[str, Any] | None:
        """The next event, or None if none arrives before ``until``."""
        if self._events:
            return self._events.pop(0)
        if b"\0" not in self._buf:
            left = until - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                return None
        return self._read()

    # -- pages ------------------------------------------------------------------------
    def open(self, path: str | Path, settle: float = 0.3) -> PageLoad:
        """Load a local file, wait for its load event and ``settle`` seconds more (late
        errors), recording console errors, requests and dialogs."""
        url = Path(path).resolve().as_uri()
        load = PageLoad(url)
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        until = time.monotonic() + self.timeout
        loaded = False
        while True:
            ev = self._event_until(until)
            if ev is None:
                if loaded:
                    return load
                raise EvalkitError(f"Chromium: {url} did not finish loading within {self.timeout:.0f} s")
            self._record(ev, load)
            if ev.get("method") == "Page.loadEventFired" and not loaded:
                loaded, until = True, time.monotonic() + settle

    def _record(self, ev: dict[str, Any], load: PageLoad) -> None:
        method, p = ev.get("method"), ev.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            load.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            load.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            load.console_errors.append(p["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            load.requests.append(p.get("request", {}).get("url", ""))
        elif method == "Page.javascriptDialogOpening":
            load.dialogs.append(p.get("message", ""))
            self.call("Page.handleJavaScriptDialog", {"accept": True}, session=True)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (DevTools, not the page's own scripts)."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True)
        if "exceptionDetails" in res:
            raise EvalkitError(f"Chromium: evaluating {expression[:60]!r} failed: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def screenshot(self, path: str | Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page by default, not just the window)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={"x": 0, "y": 0, "width": size["width"],
                                                            "height": min(size["height"], 16000), "scale": 1})
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def screenshot(page: str | Path, png: str | Path) -> Path:
    """Open ``page`` in headless Chromium and save a PNG of it (for people, and for CI artifacts)."""
    with Chromium() as browser:
        browser.open(page)
        return browser.screenshot(png)
