"""Enqueue through the database: commit first, publish after, leave to the relay
what failed (the relay's own tests: tests/maintenance/test_relay.py)."""

from __future__ import annotations

import subprocess
import time

import dramatiq
import pytest
from dramatiq.common import dq_name
from sqlalchemy import select

from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import outbox, state
from app.jobs.broker import EXTENSION
from app.models import Job
from app.rabbitmq import StubBroker
from tests.support.down_broker import DownBroker
from tests.support.live_services import publish_to


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


# --- batches -------------------------------------------------------------------


class _Confirming(StubBroker):
    """Confirms all but the messages named in ``refused``, as a broker that nacks them."""

    def __init__(self, refused: set[str], **options):
        super().__init__(**options)
        self.refused = refused

    def publish_many(self, messages, *, within=None):
        return super().publish_many(
            [m for m in messages if m.message_id not in self.refused], within=within
        )


def test_a_batch_commits_once_and_leaves_only_the_unconfirmed_jobs_to_the_relay(
    app, stub_broker, monkeypatch
):
    with app.app_context():
        jobs = [state.new_job_values(SEND_EMAIL, args=[n], user_id=None) for n in range(4)]
        refused = {jobs[1]["id"], jobs[3]["id"]}
        monkeypatch.setitem(app.extensions, EXTENSION, _Confirming(refused))

        # When the batch is committed and the broker confirms two of its four
        outbox.commit_then_publish(outbox.insert_jobs(jobs))

        # Then the two it refused wait for the relay, the other two are published
        published = dict(db.session.execute(select(Job.id, Job.published_at)).all())
        assert {job_id for job_id, at in published.items() if at is None} == refused
        assert len(published) == 4


class _Hooks(dramatiq.Middleware):
    def __init__(self):
        self.calls = []

    def before_enqueue(self, broker, message, delay):
        self.calls.append(("before", message.message_id, delay))

    def after_enqueue(self, broker, message, delay):
        self.calls.append(("after", message.message_id, delay))


def _message(n: int, queue: str = "emails") -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=queue, actor_name="send_email", args=(n,), kwargs={}, options={}
    )


@pytest.mark.rabbitmq
@pytest.mark.postgres
@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_publish_many_on_rabbitmq_confirms_the_batch_and_calls_the_enqueue_hooks(
    live_app, vhost, queue_type
):
    broker = publish_to(live_app, BROKER_URL=vhost.url(), BROKER_QUEUE_TYPE=queue_type)
    hooks = _Hooks()
    broker.add_middleware(hooks)
    try:
        messages = [_message(n) for n in range(300)]
        # A retry's copy, bound for the delay queue as ``enqueue(delay=...)`` makes it
        delayed = _message(300).copy(queue_name=dq_name("emails"), options={"eta": 1})

        confirmed = broker.publish_many([*messages, delayed], within=10)

        assert confirmed == {m.message_id for m in [*messages, delayed]}
        assert broker.get_queue_message_counts("emails")[:2] == (300, 1)
        for message in [*messages, delayed]:
            before = hooks.calls.index(("before", message.message_id, None))
            assert before < hooks.calls.index(("after", message.message_id, None))
    finally:
        broker.close()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_publish_many_counts_nacked_and_unroutable_messages_as_not_published(live_app, vhost):
    broker = publish_to(live_app, BROKER_URL=vhost.url())
    try:
        # Given a queue that refuses (nacks) publishes beyond two messages
        subprocess.run(
            [
                "rabbitmqctl",
                "set_policy",
                "-p",
                vhost.name,
                "cap",
                "^capped$",
                '{"max-length": 2, "overflow": "reject-publish"}',
                "--apply-to",
                "queues",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        broker.declare_queue("capped", ensure=True)
        time.sleep(1)  # the policy reaches the queue
        messages = [_message(n, "capped") for n in range(5)]

        # When five come in one batch, the three nacked are not confirmed
        assert broker.publish_many(messages, within=10) == {m.message_id for m in messages[:2]}

        # and once the queue is gone, the message returned is not either
        broker.channel.queue_delete("capped")
        assert broker.publish_many(messages[:1], within=10) == set()
        # the next batch declares the queue again
        assert broker.publish_many(messages[:1], within=10) == {messages[0].message_id}
    finally:
        broker.close()


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_publish_many_that_runs_out_of_time_confirms_nothing_and_raises_nothing(live_app, vhost):
    broker = publish_to(live_app, BROKER_URL=vhost.url())
    try:
        message = _message(0)
        assert broker.publish_many([message], within=0.0001) == set()
        # and the next batch, in time, is published
        assert broker.publish_many([message], within=10) == {message.message_id}
    finally:
        broker.close()
