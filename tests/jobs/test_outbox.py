"""Enqueue through the database: commit first, publish after, leave to the relay
what failed (the relay's own tests: tests/maintenance/test_relay.py)."""

from __future__ import annotations

import dramatiq
import pytest

from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import outbox, state
from app.jobs.broker import EXTENSION
from app.models import Job
from tests.support.down_broker import DownBroker


@pytest.fixture()
def down_broker(app, stub_broker, monkeypatch):
    down = DownBroker()
    monkeypatch.setitem(app.extensions, EXTENSION, down)
    return down


def test_publish_failure_leaves_the_job_queued_and_unpublished(app, down_broker):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        outbox.commit_and_publish(job)
        job = db.session.get(Job, job.id)
        assert (job.status, job.published_at) == ("queued", None)


def test_published_job_is_marked_published_and_its_message_carries_its_id(app, stub_broker):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        outbox.commit_and_publish(job)
        db.session.expire_all()
        assert db.session.get(Job, job.id).published_at is not None
    [message] = [dramatiq.Message.decode(data) for data in stub_broker.queues["emails"].queue]
    assert message.message_id == job.id
