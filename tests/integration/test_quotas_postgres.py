"""Quotas hold against concurrent requests of one user on PostgreSQL, where the
user's row lock (app/quotas.py) is what serialises them."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import auth, quotas
from app.db import db, utcnow
from app.models import Export
from tests.test_quotas import concurrent_emails_never_exceed_the_quota, race

pytestmark = pytest.mark.postgres


@pytest.fixture()
def alice(live_app):
    with live_app.app_context():
        user = auth.create_user("alice@example.com", "correct horse")
        return user.id, {"Authorization": f"Bearer {auth.issue_token(user)}"}


def test_concurrent_emails_never_exceed_the_quota_on_postgresql(live_app, alice, stub_broker):
    concurrent_emails_never_exceed_the_quota(live_app, alice[1])


def test_concurrent_exports_never_exceed_the_daily_quota_on_postgresql(live_app, alice):
    # Given a quota of 4 exports a day; the API allows one unfinished export per
    # kind, so each thread checks and adds a finished export row as
    # request_export would, in one transaction
    user_id, _ = alice
    live_app.config["USER_EXPORTS_PER_DAY"] = 4

    def start_export() -> bool:
        with live_app.app_context():
            try:
                quotas.check_export(user_id)
            except quotas.QuotaExceeded:
                return False
            now = utcnow()
            db.session.add(
                Export(
                    user_id=user_id,
                    kind="posts",
                    format="csv",
                    status="failed",
                    created_at=now,
                    finished_at=now,
                )
            )
            db.session.commit()
            return True

    # When 12 start at once
    started = race(12, start_export)

    # Then exactly 4 got in
    assert sorted(started) == [False] * 8 + [True] * 4
    with live_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Export)) == 4
