"""Enqueue through the database: commit first, publish after, relay what failed."""

from __future__ import annotations

import dramatiq
import pytest

from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import outbox, state
from app.jobs.broker import EXTENSION
from app.models import Job
from app.rabbitmq import StubBroker


class DownBroker(StubBroker):
    """A broker that refuses every publish, like RabbitMQ while it is down."""

    def enqueue(self, message, *, delay=None):
        raise dramatiq.errors.ConnectionClosed(OSError("connection refused"))


@pytest.fixture()
def down_broker(app, stub_broker, monkeypatch):
    down = DownBroker()
    monkeypatch.setitem(app.extensions, EXTENSION, down)
    return down


def _new_job(app) -> str:
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        outbox.commit_and_publish(job)
        return job.id


def test_publish_failure_leaves_the_job_queued_and_unpublished(app, down_broker):
    job_id = _new_job(app)
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert (job.status, job.published_at) == ("queued", None)


def test_relay_publishes_each_unpublished_job_once(app, stub_broker, down_broker):
    ids = {_new_job(app) for _ in range(3)}
    app.extensions[EXTENSION] = stub_broker
    with app.app_context():
        assert outbox.relay() == 3
        assert outbox.relay() == 0
    assert {m.message_id for m in _messages(stub_broker, "emails")} == ids


def test_relay_stops_at_the_first_broker_failure(app, down_broker):
    _new_job(app)
    with app.app_context():
        assert outbox.relay() == 0


def _messages(broker, queue):
    q = broker.queues[queue]
    return [dramatiq.Message.decode(data) for data in list(q.queue)]
