"""Repeated failed sign-ins are slowed down, on the API and on the login page."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app import auth
from app.db import db
from app.login_throttle import FREE_FAILURES
from app.models import LoginThrottle
from tests.web.test_pages import csrf_token

BAD = {"email": "alice@example.com", "password": "wrong"}
GOOD = {"email": "alice@example.com", "password": "correct horse"}


def test_failures_beyond_the_free_ones_are_refused_even_with_the_right_password(client, user):
    for _ in range(FREE_FAILURES):
        assert client.post("/api/tokens", json=BAD).status_code == 401
    refused = client.post("/api/tokens", json=GOOD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_the_wait_passes_and_a_success_resets_the_count(app, client, user):
    for _ in range(FREE_FAILURES):
        client.post("/api/tokens", json=BAD)
    with app.app_context():
        row = db.session.get(LoginThrottle, "alice@example.com")
        row.last_failure_at -= timedelta(minutes=1)  # the wait is over
        db.session.commit()
    assert client.post("/api/tokens", json=GOOD).status_code == 201
    with app.app_context():
        assert db.session.get(LoginThrottle, "alice@example.com") is None


def test_login_page_is_throttled_too(client, user):
    for _ in range(FREE_FAILURES):
        client.post("/login", data={**BAD, "csrf_token": csrf_token(client)})
    response = client.post("/login", data={**GOOD, "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_unknown_emails_are_throttled_like_known_ones(client):
    for _ in range(FREE_FAILURES):
        client.post("/api/tokens", json={"email": "nobody@example.com", "password": "x"})
    assert (
        client.post(
            "/api/tokens", json={"email": "nobody@example.com", "password": "x"}
        ).status_code
        == 429
    )


def test_the_try_is_counted_before_the_password_is_hashed_and_no_transaction_spans_it(
    app, client, user, monkeypatch
):
    seen = []
    real_check = auth.check_password_hash

    def check(hashed, password):
        # Another connection already sees the try counted: it was committed first.
        with db.engine.connect() as other:
            failures = other.execute(
                select(LoginThrottle.failures).where(LoginThrottle.email == "alice@example.com")
            ).scalar()
        seen.append((failures, db.session().in_transaction()))
        return real_check(hashed, password)

    monkeypatch.setattr(auth, "check_password_hash", check)

    response = client.post("/api/tokens", json=BAD)

    assert response.status_code == 401, response.get_json()
    assert seen == [(1, False)]
