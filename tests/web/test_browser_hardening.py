"""In a real Chromium, against the app served over real HTTPS (a self-signed
certificate): after signing in, the session and device cookies are Secure,
HttpOnly and SameSite=Lax, scripts cannot read them, and the page carries the
security headers."""

from __future__ import annotations

import subprocess
import threading

import pytest
from werkzeug.serving import make_server

from app import auth, create_app
from app.db import db
from tests.support.browser import launch_chromium
from tests.support.services import free_port, unavailable

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture()
def certificate(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
        )
    except FileNotFoundError:
        unavailable("openssl is not installed")
    return str(cert), str(key)


@pytest.fixture()
def https_server(app, certificate):
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    config = {key: app.config[key] for key in ("DATABASE_URL", "MAIL_PORT", "EXPORT_DIR")}
    https_app = create_app({**config, "PUBLIC_URL": url})
    with https_app.app_context():
        auth.create_user("hana@example.com", "secret password")
    server = make_server("127.0.0.1", port, https_app, threaded=True, ssl_context=certificate)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    with https_app.app_context():
        db.engine.dispose()


def test_after_sign_in_over_https_cookies_are_secure_and_pages_carry_the_headers(https_server):
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        # Given a person signing in over HTTPS
        page.goto(f"{https_server}/login")
        page.fill("input[name=email]", "hana@example.com")
        page.fill("input[name=password]", "secret password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{https_server}/")

        # Then the browser holds Secure, HttpOnly, SameSite=Lax cookies no script can read
        cookies = {cookie["name"]: cookie for cookie in context.cookies()}
        assert set(cookies) == {"session", "known_device"}
        for cookie in cookies.values():
            assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
                True,
                True,
                "Lax",
            ), cookie
        assert page.evaluate("document.cookie") == ""

        # And the signed-in page carries the security headers
        response = page.goto(f"{https_server}/")
        headers = response.all_headers()
        assert headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
        assert headers["cache-control"] == "no-store"
        assert "My exports" in page.content()
        browser.close()
