"""deploy/nginx/jobsapp.conf with the nginx Debian ships: ``nginx -t`` accepts it,
and run in front of a stand-in backend it sends HSTS, throttles sign-in, buffers
request bodies and keeps signed download links out of its access log.

The shipped file is run as it is, but for its ports, certificate, log path and
upstream address, which each replacement below checks it found."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.conftest import DEPLOY
from tests.support.services import free_port, port_open

SHIPPED = DEPLOY / "nginx" / "jobsapp.conf"
TOKEN = "ImV4cG9ydC0xMjMi.Z3JhbmRzZWNyZXQ.c2lnbmF0dXJlLXRoYXQtb3BlbnMtYS1maWxl"


class Backend(ThreadingHTTPServer):
    """Stands in for gunicorn: answers 200 to everything and notes what reached it."""

    daemon_threads = True

    def __init__(self):
        self.seen: list[tuple[str, str]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        self.server.seen.append((self.command, self.path))  # on arrival, before the body
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} is no longer in {SHIPPED.name}: update this test"
    return text.replace(old, new)


class Site:
    def __init__(self, nginx: str, openssl: str, prefix: Path, backend_port: int):
        self.nginx = nginx
        self.prefix = prefix
        self.http_port, self.https_port = free_port(), free_port()
        self.access_log = prefix / "access.log"
        self.error_log = prefix / "error.log"
        cert, key = prefix / "cert.pem", prefix / "key.pem"
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=jobs.example.com", "-keyout", key, "-out", cert],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        text = SHIPPED.read_text()
        text = _replace(text, "/etc/letsencrypt/live/jobs.example.com/fullchain.pem", str(cert))
        text = _replace(text, "/etc/letsencrypt/live/jobs.example.com/privkey.pem", str(key))
        text = _replace(text, "/var/log/nginx/access.log", str(self.access_log))
        text = _replace(text, "server 127.0.0.1:5000 ", f"server 127.0.0.1:{backend_port} ")
        text = _replace(text, "listen 80;", f"listen 127.0.0.1:{self.http_port};")
        text = _replace(text, "listen [::]:80;", "")
        https = f"listen 127.0.0.1:{self.https_port} ssl http2;"
        text = _replace(text, "listen 443 ssl http2;", https)
        text = _replace(text, "listen [::]:443 ssl http2;", "")
        (prefix / "jobsapp.conf").write_text(text)
        # As Debian's nginx.conf does, the site file is included in the http block.
        # Workers run as the test's user: nginx's default `nobody` cannot enter tmp_path.
        user = "user root;" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(
            f"""{user}
pid {prefix}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    include {prefix}/jobsapp.conf;
}}
"""
        )
        self.process: subprocess.Popen | None = None

    def command(self, *args: str) -> list[str]:
        return [self.nginx, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.error_log), *args]  # fmt: skip

    def start(self) -> Site:
        self.process = subprocess.Popen(self.command("-g", "daemon off;"))
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.https_port):
            assert self.process.poll() is None, self.error_log.read_text()
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def https(self, method: str, path: str, body=None, headers=None, *, chunked=False):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.https_port, context=context, timeout=10
        )
        try:
            connection.request(
                method, path, body=body, headers=headers or {}, encode_chunked=chunked
            )
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture()
def backend():
    server = Backend()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def site(tool, tmp_path, backend):
    site = Site(tool("nginx", "nginx"), tool("openssl", "openssl"), tmp_path, backend.server_port)
    yield site
    site.stop()


def test_shipped_file_passes_nginx_t(site):
    result = subprocess.run(site.command("-t"), capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_https_answers_carry_hsts_and_plain_http_is_redirected(site):
    site.start()

    status, headers, _ = site.https("GET", "/")
    assert status == 200
    max_age = int(headers["Strict-Transport-Security"].split("max-age=")[1].split(";")[0])
    assert max_age >= 365 * 24 * 3600
    # always: nginx's own errors too
    assert "Strict-Transport-Security" in site.https("GET", "/" + "x" * 9000)[1]

    connection = http.client.HTTPConnection("127.0.0.1", site.http_port, timeout=10)
    connection.request("GET", "/login", headers={"Host": "jobs.example.com"})
    response = connection.getresponse()
    assert (response.status, response.getheader("Location")) == (
        301,
        "https://jobs.example.com/login",
    )
    connection.close()


def test_sign_in_is_throttled_per_client_and_other_requests_are_not(site, backend):
    site.start()
    credentials = json.dumps({"email": "a@example.com", "password": "guess"}).encode()

    # When one client tries to sign in 30 times in a row
    answers = [
        site.https("POST", "/api/tokens", credentials, {"Content-Type": "application/json"})
        for _ in range(30)
    ]

    # Then after the burst nginx answers 429 in the API's JSON shape, and the app
    # saw only the burst
    statuses = [status for status, _, _ in answers]
    assert statuses[:21] == [200] * 21 and set(statuses[21:]) == {429}, statuses
    _, headers, body = answers[-1]
    assert json.loads(body)["error"] and int(headers["Retry-After"]) > 0
    assert "Strict-Transport-Security" in headers
    assert backend.seen.count(("POST", "/api/tokens")) == 21
    # the session sign-in shares the budget; showing the form and other pages do not
    assert site.https("POST", "/login", b"email=a&password=b")[0] == 429
    assert {site.https("GET", "/login")[0] for _ in range(25)} == {200}
    assert {site.https("POST", "/api/posts", b"{}")[0] for _ in range(25)} == {200}


def test_a_body_still_being_sent_does_not_reach_the_app(site, backend):
    site.start()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", site.https_port), timeout=10)
    slow = context.wrap_socket(raw)
    try:
        # Given a client that promises 1000 bytes and sends 10
        slow.sendall(
            b"POST /api/posts HTTP/1.1\r\nHost: jobs.example.com\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
        )
        # When another client asks meanwhile, it is answered
        assert site.https("GET", "/healthz")[0] == 200
    finally:
        slow.close()

    # Then the slow one never held the app: it saw only the whole request
    assert backend.seen == [("GET", "/healthz")]


def test_a_chunked_body_over_1_mib_is_refused_with_413(site, backend):
    site.start()

    def chunks():
        for _ in range(10):
            yield b"x" * 131072  # 1.25 MiB in all, no Content-Length

    status, _, _ = site.https("POST", "/api/posts", chunks(), chunked=True)

    assert status == 413
    assert backend.seen == []


def test_the_access_log_never_holds_a_signed_download_link(site, backend):
    site.start()

    # When a link is opened, with a query string too, and a page refers to it
    site.https("GET", f"/exports/download/{TOKEN}")
    site.https("GET", f"/exports/download/{TOKEN}?utm=mail")
    site.https(
        "GET", "/", headers={"Referer": f"https://jobs.example.com/exports/download/{TOKEN}"}
    )

    # Then the app got the link, and the log has three lines, none with the token
    assert ("GET", f"/exports/download/{TOKEN}") in backend.seen
    # (nginx writes a request's line once it has answered it: wait for the last)
    deadline = time.monotonic() + 5
    while len(lines := site.access_log.read_text().splitlines()) < 3:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 3, lines
    assert all(TOKEN not in line for line in lines), lines
    assert '"GET /exports/download/- HTTP/1.1" 200' in lines[0]
