"""deploy/gunicorn.conf.py run for real (``gunicorn -c deploy/gunicorn.conf.py
"app:create_app()"``, on SQLite): a raw chunked body over 1 MiB answers 413, and
the access log never holds a signed download link's token."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app import MAX_REQUEST_BYTES, auth
from tests.deploy.conftest import DEPLOY, ROOT
from tests.support.services import free_port, port_open

TOKEN = "ImV4cG9ydC0xMjMi.Z3JhbmRzZWNyZXQ.c2lnbmF0dXJlLXRoYXQtb3BlbnMtYS1maWxl"


class Gunicorn:
    def __init__(self, app, tmp_path: Path):
        self.port = free_port()
        self.log = tmp_path / "gunicorn.log"
        env = {
            **os.environ,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "EXPORT_DIR": app.config["EXPORT_DIR"],
            "SECRET_KEY": app.config["SECRET_KEY"],
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "1",
            "LOG_FORMAT": "text",
        }
        env.pop("GUNICORN_BIND", None)
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [Path(sys.executable).parent / "gunicorn", "-c", DEPLOY / "gunicorn.conf.py",
                 "app:create_app()"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", self.port):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def request(self, method: str, path: str, body=None, headers=None, *, chunked=False):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(
                method, path, body=body, headers=headers or {}, encode_chunked=chunked
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture()
def gunicorn(app, tmp_path):
    server = Gunicorn(app, tmp_path)
    yield server
    server.stop()


@pytest.fixture()
def token(app):
    with app.app_context():
        user = auth.create_user("chunks@example.com", "a long enough password")
        return auth.issue_token(user)


def _pieces(body: bytes, size: int = 65536):
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_chunked_body_over_1_mib_answers_413_not_201(gunicorn, token):
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    # Valid JSON for its first MiB: cut there, it was stored (201)
    start = json.dumps({"body": "sent in chunks"}).encode()
    over = start + b" " * MAX_REQUEST_BYTES

    status, body = gunicorn.request("POST", "/api/posts", _pieces(over), headers, chunked=True)

    assert (status, json.loads(body)) == (413, {"error": "request body over 1 MiB"})
    # and one within the limit, chunked too, is read whole
    within = start + b" " * (MAX_REQUEST_BYTES - len(start))
    status, body = gunicorn.request("POST", "/api/posts", _pieces(within), headers, chunked=True)
    assert (status, json.loads(body)["body"]) == (201, "sent in chunks")


def test_the_access_log_never_holds_a_signed_download_link(gunicorn):
    # When a link is opened (it is not a valid one: 404), with a query string too
    for path in (f"/exports/download/{TOKEN}", f"/exports/download/{TOKEN}?from=mail"):
        assert gunicorn.request("GET", path, headers={"Referer": f"https://x{path}"})[0] == 404
    gunicorn.request("GET", "/healthz")

    # Then the access log shows each request, never the token (each worker thread
    # writes its request's line after answering it: in any order, and late)
    def requests_logged() -> list[str]:
        return [line for line in gunicorn.output().splitlines() if '"GET /' in line]

    deadline = time.monotonic() + 10
    while len(requests_logged()) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = sorted(requests_logged(), key=lambda line: "/healthz" in line)
    assert len(lines) == 3, gunicorn.output()
    assert all(TOKEN not in line for line in lines), lines
    assert '"GET /exports/download/- HTTP/1.1" 404' in lines[0]
