"""Shared by the POST /api/emails tests."""

from __future__ import annotations

import dramatiq
from sqlalchemy import func, select

from app.db import db
from app.models import Email, Job

GOOD = {"to": "carol@example.com", "subject": "Hello", "body": "Hi Carol"}
ONE_MIB = 1024 * 1024


# --- helpers -----------------------------------------------------------------


def row_counts(app) -> tuple[int, int]:
    """(emails, jobs) in the database."""
    with app.app_context():
        emails = db.session.scalar(select(func.count()).select_from(Email))
        jobs = db.session.scalar(select(func.count()).select_from(Job))
        return emails, jobs


def queued_messages(broker, queue: str = "emails") -> list[dramatiq.Message]:
    """Messages waiting on ``queue`` and its delay queue, without consuming them."""
    messages = []
    for name in (queue, dramatiq.common.dq_name(queue)):
        waiting = broker.queues.get(name)
        if waiting is not None:
            messages += [dramatiq.Message.decode(data) for data in list(waiting.queue)]
    return messages


def post_email(client, headers, payload=None, **kwargs):
    return client.post(
        "/api/emails", json=GOOD if payload is None else payload, headers=headers, **kwargs
    )


def assert_nothing_written(app, broker):
    assert row_counts(app) == (0, 0)
    assert queued_messages(broker) == []
    assert broker.queues.get("emails") is None or broker.queues["emails"].qsize() == 0
