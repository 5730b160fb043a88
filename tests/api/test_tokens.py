"""POST /api/tokens: a bearer token for good credentials, JSON errors otherwise;
tokens expire, and DELETE /api/tokens/current revokes one."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.db import db, utcnow
from app.models import ApiToken

PASSWORD = "correct horse"  # what tests/conftest.py gives every user


def test_good_credentials_answer_201_with_a_token_that_authenticates(client, user):
    # When
    response = client.post("/api/tokens", json={"email": "alice@example.com", "password": PASSWORD})

    # Then
    assert response.status_code == 201
    token = response.get_json()["token"]
    assert isinstance(token, str) and len(token) >= 32
    me = client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


def test_email_is_matched_case_insensitively_and_trimmed(client, user):
    response = client.post(
        "/api/tokens", json={"email": "  Alice@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 201


def test_each_login_issues_a_different_token(client, user):
    credentials = {"email": "alice@example.com", "password": PASSWORD}

    first = client.post("/api/tokens", json=credentials).get_json()["token"]
    second = client.post("/api/tokens", json=credentials).get_json()["token"]

    assert first != second


@pytest.mark.parametrize(
    "credentials",
    [
        {"email": "alice@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": PASSWORD},
    ],
    ids=["wrong-password", "unknown-email"],
)
def test_bad_credentials_answer_401_json_error(client, user, credentials):
    response = client.post("/api/tokens", json=credentials)

    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["error"]
    assert "token" not in response.get_json()


def test_wrong_password_and_unknown_email_give_the_same_answer(client, user):
    wrong_password = client.post(
        "/api/tokens", json={"email": "alice@example.com", "password": "nope"}
    )
    unknown_email = client.post(
        "/api/tokens", json={"email": "eve@example.com", "password": "nope"}
    )

    assert wrong_password.get_json() == unknown_email.get_json()


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"password": PASSWORD}, ["email"]),
        ({"email": "alice@example.com"}, ["password"]),
        ({}, ["email", "password"]),
    ],
    ids=["no-email", "no-password", "neither"],
)
def test_missing_fields_answer_422_naming_each_field(client, user, body, missing):
    response = client.post("/api/tokens", json=body)

    assert response.status_code == 422
    payload = response.get_json()
    assert payload["error"]
    assert sorted(payload["fields"]) == missing


def test_non_string_fields_answer_422_naming_the_field(client, user):
    response = client.post("/api/tokens", json={"email": ["alice@example.com"], "password": 1})

    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"email", "password"}


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ('{"email": "alice@example.com",', "application/json"),
        ("email=alice@example.com&password=x", "application/x-www-form-urlencoded"),
        ('["alice@example.com", "correct horse"]', "application/json"),
    ],
    ids=["malformed-json", "form-encoded", "json-array"],
)
def test_unusable_bodies_answer_400_json_error(client, user, data, content_type):
    response = client.post("/api/tokens", data=data, content_type=content_type)

    assert response.status_code == 400
    assert response.get_json()["error"]


def test_token_is_stored_only_as_a_hash(app, client, user):
    # Given a freshly issued token
    response = client.post("/api/tokens", json={"email": "alice@example.com", "password": PASSWORD})
    token = response.get_json()["token"]

    # When the token table is read
    with app.app_context():
        rows = db.session.execute(select(ApiToken.__table__)).mappings().all()

    # Then no column of any row holds the clear token; the new row holds its SHA-256
    assert len(rows) == 2  # the fixture's token and this one
    for row in rows:
        for value in row.values():
            assert token not in str(value)
    assert hashlib.sha256(token.encode()).hexdigest() in {row["token_hash"] for row in rows}


def test_a_token_expires_after_api_token_ttl_days(app, client, user):
    assert app.config["API_TOKEN_TTL_DAYS"] == 90
    with app.app_context():
        token = db.session.scalar(db.select(ApiToken))
        assert token.expires_at - token.created_at == timedelta(days=90)
        token.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()

    assert client.get("/api/jobs", headers=user[1]).status_code == 401


def test_delete_current_revokes_exactly_the_token_that_authenticates(client, user):
    other = client.post(
        "/api/tokens", json={"email": "alice@example.com", "password": "correct horse"}
    )
    other_headers = {"Authorization": f"Bearer {other.json['token']}"}

    revoked = client.delete("/api/tokens/current", headers=user[1])

    assert revoked.status_code == 204
    assert client.get("/api/jobs", headers=user[1]).status_code == 401
    assert client.delete("/api/tokens/current", headers=user[1]).status_code == 401
    assert client.get("/api/jobs", headers=other_headers).status_code == 200
