"""A live HTTP server for the app and headless Chromium (Debian's package) driven
by Playwright, for tests that look at the pages as a person would."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from werkzeug.serving import make_server

from tests.support.services import free_port, unavailable

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# The machine has no network beyond the loopback: keep Chromium from reaching out.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class LiveServer:
    def __init__(self, app):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server("127.0.0.1", self.port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()


def launch_chromium(playwright):
    if not Path(CHROMIUM).exists():
        unavailable(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
