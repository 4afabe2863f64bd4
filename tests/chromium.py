"""Headless Chromium for the tests: the DOM after load, a screenshot, and what the page logged.

Three ways in, all with a fresh profile and the flags that work as root in a container
(:data:`FLAGS`):

* :func:`dump_dom`: ``--headless --dump-dom`` with ``--enable-logging=stderr --v=0``; returns
  the serialized DOM and every ``CONSOLE`` line Chromium logged;
* :func:`screenshot`: ``--headless --screenshot``;
* :func:`inspect_page`: the DevTools protocol over ``--remote-debugging-pipe`` (file
  descriptors 3 and 4, NUL-separated JSON): console calls, uncaught exceptions, log entries
  (CSP violations, failed loads) and every network request the page made.

No network is reachable from the browser: every host name resolves to nothing
(``--host-resolver-rules``), so a page that needs the network shows it as failed requests.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FLAGS", "find_chromium", "dump_dom", "screenshot", "PageReport", "inspect_page"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
_TIMEOUT = 90.0


def find_chromium() -> str | None:
    """Path of a Chromium binary (Debian's ``chromium`` first), or ``None``."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(binary: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def dump_dom(binary: str, page: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` after load, and the console lines Chromium logged while loading it.

    Raises:
        RuntimeError: Chromium exited with an error.
    """
    result = _run(binary, ["--enable-logging=stderr", "--v=0", "--dump-dom", page.resolve().as_uri()])
    if result.returncode != 0:
        raise RuntimeError(f"chromium --dump-dom exited {result.returncode}: {result.stderr[-2000:]}")
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def screenshot(binary: str, page: Path, out: Path, width: int = 1280, height: int = 4000) -> Path:
    """A PNG of ``page`` in a ``width`` x ``height`` window.

    Raises:
        RuntimeError: Chromium failed or wrote no file.
    """
    result = _run(binary, [f"--window-size={width},{height}", f"--screenshot={out}", page.resolve().as_uri()])
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium --screenshot exited {result.returncode}: {result.stderr[-2000:]}")
    return out


@dataclass
class PageReport:
    """What a page did while it loaded (DevTools protocol events).

    Attributes:
        console: ``(type, text)`` of every console API call (``log``, ``error``, ...).
        exceptions: text of every uncaught exception.
        log: ``(level, source, text)`` of browser log entries (CSP violations, failed loads).
        requests: URL of every request the page sent (the page itself included).
        failed: ``(url, error)`` of every request that failed.
    """

    console: list[tuple[str, str]] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def errors(self) -> list[str]:
        """Every console error or warning, exception, error log entry and failed request, one line each."""
        found = [f"console.{kind}: {text}" for kind, text in self.console if kind in ("error", "assert", "warning")]
        found += [f"uncaught: {text}" for text in self.exceptions]
        found += [f"log {level} ({source}): {text}" for level, source, text in self.log if level in ("error", "warning")]
        found += [f"request failed: {url} ({error})" for url, error in self.failed]
        return found


class _Pipe:
    """A DevTools protocol connection over Chromium's --remote-debugging-pipe."""

    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the protocol's fds 3 (commands in) and 4 (replies out)
            high_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)  # out of the way of 3 and 4 first
            high_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)  # dup2 targets are inheritable, the pipes' own fds are not
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire,  # the tests are single-threaded
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply (events read meanwhile are kept in :attr:`events`)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        """Read events until ``method`` arrives."""
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == method for event in self.events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {method} within {timeout:g} s")
            self.events.append(self._read())

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        """Close the browser and the pipe."""
        with contextlib.suppress(RuntimeError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def _report(events: list[dict[str, Any]], session: str) -> PageReport:
    report = PageReport()
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            report.console.append((params.get("type", "?"), text))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            report.exceptions.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            report.log.append((entry.get("level", "?"), entry.get("source", "?"), entry.get("text", "")))
        elif method == "Network.requestWillBeSent":
            report.requests.append(params.get("request", {}).get("url", "?"))
        elif method == "Network.loadingFailed":
            request_id = params.get("requestId")
            url = next(
                (
                    e["params"]["request"]["url"]
                    for e in events
                    if e.get("method") == "Network.requestWillBeSent" and e["params"].get("requestId") == request_id
                ),
                "?",
            )
            report.failed.append((url, params.get("errorText", "?")))
    return report


def inspect_page(binary: str, page: Path, settle: float = 1.0) -> PageReport:
    """Load ``page`` through the DevTools protocol and report what it logged and requested.

    Args:
        binary: the Chromium binary.
        page: an HTML file.
        settle: seconds to keep listening after the load event (late scripts, lazy loads).

    Raises:
        RuntimeError: the browser did not load the page in time or closed the pipe.
    """
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
            pipe.wait_for("Page.loadEventFired")
            end = time.monotonic() + settle
            while time.monotonic() < end:
                pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)  # drains pending events
                time.sleep(0.1)
            return _report(pipe.events, session)
        finally:
            pipe.close()
