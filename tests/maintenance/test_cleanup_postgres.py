"""cleanup on PostgreSQL: old jobs go with their emails (their rows locked
while both are deleted), and nothing else does."""

from __future__ import annotations

import pytest

from app import auth
from app.db import db
from app.maintenance.cleanup import cleanup
from app.models import Email, Job
from tests.maintenance.test_cleanup import _email, _job

pytestmark = pytest.mark.postgres


def test_cleanup_deletes_old_jobs_with_their_emails_on_postgresql(live_app):
    keep_days = live_app.config["JOB_RETENTION_DAYS"]
    with live_app.app_context():
        user_id = auth.create_user("alice@example.com", "correct horse").id
        old, young = _job("succeeded", keep_days + 1), _job("succeeded", keep_days - 1)
        _email(user_id, old, age_days=keep_days + 2)
        _email(user_id, None, age_days=keep_days + 2)
        kept = _email(user_id, young, age_days=keep_days)

        summary = cleanup()

        assert (summary["jobs_deleted"], summary["emails_deleted"]) == (1, 1)
        assert list(db.session.scalars(db.select(Job.id))) == [young]
        assert list(db.session.scalars(db.select(Email.id))) == [kept]
