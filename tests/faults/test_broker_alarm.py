"""A broker alarm (RabbitMQ blocks every publish) must not hold a web request
past its time: the request gives up publishing after a few seconds, answers 202
for its committed job, and the relay publishes the job once the alarm clears.
The alarm is raised on a private node: the shared RabbitMQ is left alone."""

from __future__ import annotations

import time

import pytest

from app.db import db
from app.jobs import outbox
from app.maintenance.relay import relay
from app.models import Job
from tests.support.audit import audit
from tests.support.jobs import all_in
from tests.support.live_services import publish_to
from tests.support.rabbit_cluster import RabbitCluster
from tests.support.worker import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]

EMAILS = 3
GUNICORN_TIMEOUT_S = 30


@pytest.fixture()
def node():
    cluster = RabbitCluster(1)
    try:
        yield cluster.start().nodes[0]
    finally:
        cluster.remove()


@pytest.fixture()
def node_broker(live_app, node):
    """The test's app publishes to the private node, as the web would."""
    broker = publish_to(live_app, BROKER_URL=node.url, BROKER_QUEUE_TYPE="classic")
    broker.declare_queue("emails", ensure=True)
    yield broker
    broker.close()


@pytest.fixture()
def short_publish_wait(monkeypatch):
    """A request gives up publishing after 1 s rather than 3: the same bound, met sooner."""
    monkeypatch.setattr(outbox, "REQUEST_PUBLISH_S", 1.0)


def _unpublished(app, job_ids) -> int:
    with app.app_context():
        return sum(db.session.get(Job, job_id).published_at is None for job_id in job_ids)


def test_requests_during_a_broker_alarm_answer_202_at_once_and_the_relay_publishes_later(
    live_app, node, node_broker, start_worker, smtp_server, headers, short_publish_wait
):
    # Given a broker that blocks every publish (its memory alarm raised)
    node.set_memory_alarm(True)
    client = live_app.test_client()

    # When emails are sent through the web
    job_ids, slowest = [], 0.0
    for n in range(EMAILS):
        started = time.monotonic()
        answer = client.post(
            "/api/emails",
            json={"to": f"r{n}@example.com", "subject": f"alarm {n}", "body": "hi"},
            headers=headers,
        )
        slowest = max(slowest, time.monotonic() - started)
        assert answer.status_code == 202, answer.json
        job_ids.append(answer.json["job_id"])

    # Then each answered well within a request's time, leaving its job to the relay
    assert slowest < GUNICORN_TIMEOUT_S / 2  # a correctness bound, not a benchmark
    assert _unpublished(live_app, job_ids) == EMAILS
    assert all_in(live_app, job_ids, "queued")

    # When the alarm clears, a worker runs and the relay publishes what waited
    node.set_memory_alarm(False)
    start_worker(BROKER_URL=node.url)

    # (A publish that gave up may still land once the alarm clears: RabbitMQ
    # reads what the connection had sent before it was closed. Its job is then
    # run by that message; the relay only publishes what is still unpublished.)
    def relayed() -> bool:  # what the scheduler's relay does every second
        with live_app.app_context():
            relay()
            waiting = db.select(Job.id).where(Job.published_at.is_(None), Job.status == "queued")
            return db.session.scalars(waiting).first() is None

    wait_until(relayed, interval=1, message="the relay to publish every job")

    # Then every email is delivered once
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=40, message="sent")
    assert audit(live_app, smtp_server)["delivered"] == EMAILS
