"""The hostile requests of tests/support/hostile.py on PostgreSQL, which refuses
a NUL in text with a driver error: still a 4xx, never a 500."""

from __future__ import annotations

import pytest

from app import auth
from tests.support.hostile import PARAMS, send

pytestmark = pytest.mark.postgres


@pytest.fixture()
def admin_headers(live_app):
    with live_app.app_context():
        admin = auth.create_user("admin@example.com", "correct horse", admin=True)
        return {"Authorization": f"Bearer {auth.issue_token(admin)}"}


@pytest.mark.parametrize(("method", "path", "data", "expected"), PARAMS)
def test_hostile_request_gets_a_4xx_on_postgresql(
    live_app, admin_headers, stub_broker, method, path, data, expected
):
    client = live_app.test_client()
    assert send(client, admin_headers, method, path, data).status_code == expected
