"""Quorum queues (``BROKER_QUEUE_TYPE=quorum``, app/rabbitmq.py) on the local
RabbitMQ node, with real workers: retries through the quorum delay queue, dead
letters, the delivery limit, and an admin's retry of a dead-lettered job."""

from __future__ import annotations

import dramatiq
import pika
import pytest

import broker as broker_module
from app.db import db
from app.models import Job
from tests.support.jobs import job, wait_status
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAIL = {"to": "kim@example.com", "subject": "Hi", "body": "Hello"}
DELIVERY_LIMIT = 2


@pytest.fixture()
def quorum_broker(vhost, stub_broker, monkeypatch):
    """The test process publishes as the web would, declaring quorum queues."""
    monkeypatch.setenv("BROKER_DELIVERY_LIMIT", str(DELIVERY_LIMIT))
    broker = broker_module.build_broker(vhost.url(), queue_type="quorum")
    dramatiq.set_broker(broker)
    broker.declare_queue("emails", ensure=True)
    yield broker
    broker.close()
    dramatiq.set_broker(stub_broker)


@pytest.fixture()
def quorum_worker(start_worker):
    def start(*modules, **env):
        return start_worker(
            *modules,
            BROKER_QUEUE_TYPE="quorum",
            BROKER_DELIVERY_LIMIT=str(DELIVERY_LIMIT),
            **env,
        )

    return start


def test_every_queue_is_declared_as_a_quorum_queue_without_priorities(quorum_broker, vhost):
    queues = vhost.queues()

    assert {name: q["type"] for name, q in queues.items()} == {
        "emails": "quorum",
        "emails.DQ": "quorum",
        "emails.XQ": "quorum",
    }
    work = queues["emails"]["arguments"]
    assert work["x-delivery-limit"] == DELIVERY_LIMIT
    assert work["x-dead-letter-routing-key"] == "emails.XQ"
    assert work["x-dead-letter-strategy"] == "at-least-once"
    assert "x-max-priority" not in work


def test_retries_then_dead_letter_then_admin_retry_sends_once(
    live_app, quorum_broker, vhost, quorum_worker, smtp_server, user_and_admin_headers
):
    # Given an SMTP server that refuses for now, and a worker with two retries
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    live_app.config["EMAIL_MAX_RETRIES"] = 2  # a job's retries are set when it is created
    quorum_worker()
    user_headers, admin_headers = user_and_admin_headers
    client = live_app.test_client()

    # When an email is sent, it is retried through the delay queue, then dead-lettered
    ids = client.post("/api/emails", json=EMAIL, headers=user_headers).json
    wait_status(live_app, ids["job_id"], "failed")
    assert [a.outcome for a in job(live_app, ids["job_id"]).history] == ["failed"] * 3
    wait_until(lambda: vhost.message_count("emails.XQ") == 1, message="the dead letter")

    # When the fault is fixed and an admin retries the job
    smtp_server.recorder.reply = None
    answer = client.post(f"/api/jobs/{ids['job_id']}/retry", headers=admin_headers)
    assert answer.status_code == 202
    wait_status(live_app, ids["job_id"], "succeeded")

    # And an operator also moves the old dead letter back onto the work queue
    _move_dead_letters(vhost, "emails")
    wait_until(lambda: vhost.message_count("emails") == 0, message="the old copy consumed")

    # Then the email went out once: the old copy belongs to an earlier series
    assert len(smtp_server.recorder.wait_for(1)) == 1
    assert [a.outcome for a in job(live_app, ids["job_id"]).history][-1] == "succeeded"
    assert len(smtp_server.messages) == 1


def test_a_job_that_keeps_killing_its_worker_fails_with_the_reason(
    live_app, quorum_broker, vhost, quorum_worker, start_scheduler, smtp_server,
    user_and_admin_headers,
):
    # Given a job with one retry, whose every attempt kills its worker process
    live_app.config["EMAIL_MAX_RETRIES"] = 1
    user_headers, _ = user_and_admin_headers
    ids = live_app.test_client().post("/api/emails", json=EMAIL, headers=user_headers).json
    env = {"BROKER_QUEUE_TYPE": "quorum", "JOB_LEASE_S": "2"}
    start_scheduler(**env)

    # When workers keep taking it over: the redelivered message once the dead
    # worker's lease expired, or the relay's rescue of the orphaned job
    def failed():
        with live_app.app_context():
            return db.session.get(Job, ids["job_id"]).status == "failed"

    for _ in range(4):
        worker = quorum_worker("tests.support.crash_on_send", JOB_LEASE_S="2")
        wait_until(lambda w=worker: w.process.poll() is not None or failed(), timeout=40)
        if failed():
            break

    # Then it fails with the reason, instead of killing worker after worker
    wait_status(live_app, ids["job_id"], "failed")
    found = job(live_app, ids["job_id"])
    assert found.error_type in ("WorkerLost", "DeliveryLimitReached")
    outcomes = [a.outcome for a in found.history]
    assert outcomes[-1] == "failed" and set(outcomes[:-1]) == {"interrupted"}
    assert smtp_server.messages == []


def _move_dead_letters(vhost, queue: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(vhost.url()))
    channel = connection.channel()
    channel.confirm_delivery()
    while True:
        method, properties, body = channel.basic_get(f"{queue}.XQ")
        if method is None:
            break
        channel.basic_publish("", queue, body, properties)
        channel.basic_ack(method.delivery_tag)
    connection.close()
