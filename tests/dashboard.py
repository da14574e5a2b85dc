"""``dbkeeper serve`` as a real process, and Debian's chromium driven by Playwright, for the dashboard's tests.

``Server`` starts ``python -m dbkeeper serve`` on a free loopback port (or the address given), waits for
``/healthz`` and stops it with SIGTERM. ``browser()`` launches the system chromium (``/usr/bin/chromium``, the
Debian package scripts/install-test-deps installs): Playwright's own browser download is never used.
``Visit`` records every console error, page error and failed request of a page, so a test can require none.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("DBKEEPER_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running ``dbkeeper serve``; ``url`` ends without a slash."""

    proc: subprocess.Popen[str]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def get(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> tuple[int, str, Any]:
    """(status, body, headers) of one request; HTTP errors are answers too."""
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


@contextmanager
def serve(
    cwd: Path, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1", port: int | None = None
) -> Iterator[Server]:
    port = port or free_port()
    log = cwd / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dbkeeper", "serve", "--listen", f"{host}:{port}", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(proc, url, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dbkeeper serve exited {proc.returncode}: {server.output()}")
            try:
                if get(url + "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dbkeeper serve did not answer /healthz within 60 s: {server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # SIGTERM (systemd stopping the service) is a clean stop.
    assert proc.returncode == 0, f"dbkeeper serve exited {proc.returncode} on SIGTERM: {server.output()}"


@dataclass
class Visit:
    """Problems a page showed in the browser: console errors, uncaught errors, failed or refused requests."""

    problems: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
        )


@contextmanager
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, through Playwright."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/install-test-deps (it installs Debian's chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
