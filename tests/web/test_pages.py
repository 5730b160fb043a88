"""Session sign-in, CSRF and the user's exports page, through the test client."""

from __future__ import annotations

import re

import pytest

from app.db import db
from app.models import Export


def csrf_token(client, path="/login") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, email="alice@example.com", password="correct horse", next_path=None):
    url = "/login" + (f"?next={next_path}" if next_path else "")
    return client.post(
        url, data={"email": email, "password": password, "csrf_token": csrf_token(client)}
    )


def test_anonymous_visitor_is_sent_to_login_and_back_after_signing_in(client, user):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/")
    signed_in = sign_in(client, next_path="/")
    assert (signed_in.status_code, signed_in.headers["Location"]) == (302, "/")
    assert "My exports" in client.get("/").get_data(as_text=True)


def test_wrong_password_is_refused(client, user):
    response = sign_in(client, password="wrong")
    assert response.status_code == 401
    assert "Wrong email or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "javascript:x"])
def test_sign_in_never_redirects_off_site(client, user, target):
    response = sign_in(client, next_path=target)
    assert response.headers["Location"] == "/"


def test_login_form_without_csrf_token_is_refused(client, user):
    response = client.post(
        "/login", data={"email": "alice@example.com", "password": "correct horse"}
    )
    assert response.status_code == 400
    assert client.get("/").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(client, user):
    response = sign_in(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


def test_export_button_queues_an_export(app, client, user, stub_broker):
    sign_in(client)
    response = client.post(
        "/exports", data={"format": "json", "csrf_token": csrf_token(client, "/")}
    )
    assert response.status_code == 303
    with app.app_context():
        [export] = db.session.scalars(db.select(Export)).all()
        assert (export.format, export.status) == ("json", "queued")
    items = client.get("/exports.json").json["items"]
    assert [item["id"] for item in items] == [export.id]


def test_export_form_without_csrf_token_is_refused_and_writes_nothing(
    app, client, user, stub_broker
):
    sign_in(client)
    response = client.post("/exports", data={"format": "csv"})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.query(Export).count() == 0


def test_second_export_from_the_page_is_refused_with_a_message(app, client, user, stub_broker):
    sign_in(client)
    token = csrf_token(client, "/")
    client.post("/exports", data={"format": "csv", "csrf_token": token})
    response = client.post(
        "/exports", data={"format": "xlsx", "csrf_token": token}, follow_redirects=True
    )
    assert "already in progress" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Export).count() == 1


def test_exports_json_shows_only_my_exports(app, client, user, other_user, stub_broker):
    _, other_headers = other_user
    client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=other_headers)
    sign_in(client)
    assert client.get("/exports.json").json["items"] == []


def test_logout_ends_the_session(client, user):
    sign_in(client)
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.get("/").status_code == 302


def test_a_copy_of_the_session_cookie_is_worthless_after_sign_out(app, user):
    # Given a signed-in browser, and a copy of its session cookie
    browser = app.test_client()
    sign_in(browser)
    stolen = browser.get_cookie("session").value
    assert browser.get("/").status_code == 200

    # When the user signs out
    browser.post("/logout", data={"csrf_token": csrf_token(browser, "/")})

    # Then the copied cookie no longer opens the pages
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/").status_code == 302


def test_html_errors_are_pages_in_the_sites_style(app, client, user):
    assert client.get("/no-such-page").status_code == 404
    sign_in(client)
    pages = {
        404: client.get("/no-such-page"),
        403: client.get("/admin/jobs"),
        400: client.post("/exports", data={"format": "csv"}),  # no CSRF token
    }
    for status, response in pages.items():
        html = response.get_data(as_text=True)
        assert response.status_code == status
        assert response.mimetype == "text/html"
        assert '<span class="brand">jobsapp</span>' in html  # the site's own layout
        assert f'<p class="muted mono">{status}</p>' in html
