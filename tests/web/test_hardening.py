"""Cookies and headers of a site served over HTTPS, and sign-in redirect targets
that could split a header."""

from __future__ import annotations

import re

import pytest

from app import create_app
from app.db import db
from tests.web.test_pages import sign_in

HTTPS = "https://jobs.example.com"
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@pytest.fixture()
def https_app(app):
    """The test app as configured for a site whose PUBLIC_URL is https://."""
    config = {key: app.config[key] for key in ("DATABASE_URL", "MAIL_PORT", "EXPORT_DIR")}
    https_app = create_app({**config, "TESTING": True, "PUBLIC_URL": HTTPS})
    yield https_app
    with https_app.app_context():
        db.engine.dispose()


def cookies_set(response) -> dict[str, str]:
    return {header.split("=", 1)[0]: header for header in response.headers.getlist("Set-Cookie")}


def assert_flags(header: str, *, secure: bool) -> None:
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert "httponly" in attributes, header
    assert "samesite=lax" in header.lower(), header
    assert ("secure" in attributes) is secure, header


def https_csrf_token(client) -> str:
    html = client.get("/login", base_url=HTTPS).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_over_https_every_cookie_is_secure_httponly_and_samesite_lax(https_app, user):
    client = https_app.test_client()
    # The login form's CSRF token lives in the session cookie
    form = client.get("/login", base_url=HTTPS)
    [session_cookie] = cookies_set(form).values()
    assert session_cookie.startswith("session=")
    assert_flags(session_cookie, secure=True)

    signed_in = client.post(
        "/login",
        base_url=HTTPS,
        headers={"Referer": f"{HTTPS}/login"},
        data={
            "email": "alice@example.com",
            "password": "correct horse",
            "csrf_token": https_csrf_token(client),
        },
    )
    assert signed_in.status_code == 302, signed_in.get_data(as_text=True)
    cookies = cookies_set(signed_in)
    assert set(cookies) == {"session", "known_device"}
    for header in cookies.values():
        assert_flags(header, secure=True)


def test_over_http_cookies_are_httponly_but_not_secure(client, user):
    response = sign_in(client)
    cookies = cookies_set(response)
    assert set(cookies) == {"session", "known_device"}
    for header in cookies.values():
        assert_flags(header, secure=False)


@pytest.mark.parametrize("path", ["/login", "/", "/exports.json", "/healthz", "/no-such-page"])
def test_every_page_of_a_signed_in_user_has_the_security_headers(client, user, path):
    sign_in(client)
    response = client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_json_api_answers_have_the_security_headers(client, user):
    response = client.get("/api/jobs", headers=user[1])
    assert response.status_code == 200
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'none'"


def test_a_views_own_content_security_policy_is_extended_not_replaced(app):
    @app.get("/with-policy")
    def with_policy():
        return "x", 200, {"Content-Security-Policy": "default-src 'self'"}

    response = app.test_client().get("/with-policy")
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; frame-ancestors 'none'"
    )


@pytest.mark.parametrize(
    "target", ["/%0d%0aSet-Cookie:%20x=1", "/%0aLocation:%20//evil.example", "/\\evil.example/"]
)
def test_sign_in_with_a_next_holding_control_characters_goes_to_the_default_page(
    client, user, target
):
    response = sign_in(client, next_path=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
