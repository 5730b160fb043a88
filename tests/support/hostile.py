"""Requests an attacker sends to make the app fail: NULs and lone surrogates in
bodies, paths, query strings and cursors. Shared by the SQLite and PostgreSQL
tests (PostgreSQL refuses a NUL in text; SQLite cannot encode a lone surrogate)."""

from __future__ import annotations

import base64
import re

import pytest

NUL_CURSOR = base64.urlsafe_b64encode(b"2026-01-01T00:00:00+00:00|\x00").decode()
GOOD_EMAIL = {"to": "carol@example.com", "subject": "Hi", "body": "Hello"}

# (method, path, JSON body or form, expected status); paths under /api/ use the
# admin's token, the others the admin's session.
CASES = [
    ("POST", "/api/posts", {"body": "a\x00b"}, 422),
    ("POST", "/api/posts", {"body": "a\ud800b"}, 422),
    ("POST", "/api/emails", {**GOOD_EMAIL, "body": "a\x00b"}, 422),
    ("POST", "/api/emails", {**GOOD_EMAIL, "html": "\udfff"}, 422),
    ("POST", "/api/emails", {**GOOD_EMAIL, "subject": "a\ud800"}, 422),
    ("POST", "/api/tokens", {"email": "admin@example.com\x00", "password": "x"}, 422),
    ("POST", "/api/tokens", {"email": "admin@example.com", "password": "\ud800"}, 422),
    ("GET", "/api/jobs/%00", None, 404),
    ("GET", "/api/emails/%00", None, 404),
    ("GET", "/api/exports/%00", None, 404),
    ("GET", "/api/exports/%00/download", None, 404),
    ("POST", "/api/jobs/%00/retry", None, 404),
    ("GET", "/api/jobs/%ED%A0%80", None, 404),  # a surrogate, percent-encoded
    ("GET", "/api/jobs?actor=%00", None, 422),
    ("GET", "/api/jobs?status=%00", None, 422),
    ("GET", f"/api/jobs?cursor={NUL_CURSOR}", None, 422),
    ("POST", "/login", {"email": "admin@example.com\x00", "password": "x"}, 401),
    ("GET", "/admin/jobs?q=%00", None, 422),
    ("GET", "/admin/jobs?actor=%00", None, 422),
    ("GET", f"/admin/jobs?cursor={NUL_CURSOR}", None, 400),
    ("GET", "/admin/jobs/%00", None, 404),
    ("GET", "/admin/emails?cursor=%00", None, 422),
    ("GET", f"/admin/emails?cursor={NUL_CURSOR}", None, 400),
    ("GET", "/exports/download/%00", None, 404),
]
PARAMS = [pytest.param(*case, id=f"{case[0]} {case[1]} {case[2]!r}"[:80]) for case in CASES]


def send(client, admin_headers: dict, method: str, path: str, data):
    if path.startswith("/api/"):
        return client.open(path, method=method, headers=admin_headers, json=data)
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
    if path != "/login":
        client.post(
            "/login",
            data={"email": "admin@example.com", "password": "correct horse", "csrf_token": csrf},
        )
    if method == "GET":
        return client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf})
