"""Render a page in headless Chromium and collect its console errors, over the DevTools protocol on a pipe.

`--remote-debugging-pipe` makes Chromium read JSON commands from fd 3 and write replies and events to fd 4,
each message ending in a NUL byte: no websocket, no extra package. Collected as errors: console calls of type
error/assert, uncaught exceptions (`Runtime.exceptionThrown`) and browser log entries of level error (failed
loads of images or other resources land there, not in the console API).
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
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--remote-debugging-pipe")


def find_browser() -> str | None:
    """The first Chromium-family executable on PATH, or None."""
    return next((p for p in (shutil.which(n) for n in NAMES) if p), None)


@dataclass
class Page:
    """What loading one URL gave: errors, warnings (messages), the PNG screenshot, whether `load` fired."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    screenshot: bytes = b""
    loaded: bool = False


class _Pipe:
    """The DevTools pipe: numbered commands, replies matched by id, events kept for the caller."""

    def __init__(self, write_fd: int, read_fd: int, deadline: float) -> None:
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self.buffer, self.next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> int:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        return self.next_id

    def _read_one(self, until: float) -> dict[str, Any] | None:
        while b"\0" not in self.buffer:
            left = min(until, self.deadline) - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                return None
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError("the browser closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        wanted = self.send(method, params, session)
        while True:
            msg = self._read_one(self.deadline)
            if msg is None:
                raise TimeoutError(f"no reply to {method} before the deadline")
            if msg.get("id") == wanted:
                if "error" in msg:
                    raise RuntimeError(f"{method} failed: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def drain(self, seconds: float) -> None:
        """Keep reading events for `seconds` (late errors after the load event)."""
        until = time.monotonic() + seconds
        while (msg := self._read_one(until)) is not None:
            self.events.append(msg)


def _collect(events: list[dict[str, Any]], page: Page) -> None:
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            (page.errors if p.get("type") in ("error", "assert") else page.warnings).append(f"console: {text}")
        elif method == "Runtime.exceptionThrown":
            details = p.get("exceptionDetails", {})
            page.errors.append(f"exception: {details.get('exception', {}).get('description', details.get('text'))}")
        elif method == "Log.entryAdded":
            entry = p.get("entry", {})
            text = f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip()
            (page.errors if entry.get("level") == "error" else page.warnings).append(text)
        elif method == "Page.loadEventFired":
            page.loaded = True


def _wait_load(pipe: _Pipe) -> None:
    while not any(e.get("method") == "Page.loadEventFired" for e in pipe.events):
        if time.monotonic() > pipe.deadline:
            raise TimeoutError("the page did not fire its load event before the deadline")
        pipe.drain(0.2)


def render(url: str, width: int = 1100, height: int = 1400, timeout: float = 60.0, browser: str | None = None) -> Page:
    """Load `url` in a fresh headless browser profile; returns the errors and a width x height screenshot."""
    exe = browser or find_browser()
    if exe is None:
        raise FileNotFoundError("no Chromium-family browser on PATH")
    cmd_r, cmd_w = os.pipe()  # we write commands; the browser reads them as fd 3
    res_r, res_w = os.pipe()  # the browser writes as fd 4; we read

    def fds_3_and_4() -> None:
        a, b = os.dup(cmd_r), os.dup(res_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    page = Page()
    with tempfile.TemporaryDirectory(prefix="convolve-browser-") as profile:
        proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"],
                                preexec_fn=fds_3_and_4, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(cmd_r)
        os.close(res_w)
        pipe = _Pipe(cmd_w, res_r, time.monotonic() + timeout)
        try:
            target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for method in ("Runtime.enable", "Log.enable", "Page.enable"):
                pipe.call(method, session=session)
            pipe.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                             "deviceScaleFactor": 1, "mobile": False}, session)
            pipe.call("Page.navigate", {"url": url}, session)
            _wait_load(pipe)
            pipe.drain(0.5)
            shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session)
            page.screenshot = base64.b64decode(shot["data"])
            pipe.send("Browser.close")
        finally:
            os.close(cmd_w)
            os.close(res_r)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    _collect(pipe.events, page)
    return page
