"""Quorum queues (``BROKER_QUEUE_TYPE=quorum``, app/rabbitmq.py) on the local
RabbitMQ node, with real workers: retries through the quorum delay queue, dead
letters, the delivery limit (which graceful restarts must not use up), and an
admin's retry of a dead-lettered job."""

from __future__ import annotations

import os
import signal

import pika
import pytest

from app.db import db
from app.models import Job
from tests.support.audit import audit
from tests.support.held_smtp import hold
from tests.support.jobs import job, wait_status
from tests.support.live_services import publish_to
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAIL = {"to": "kim@example.com", "subject": "Hi", "body": "Hello"}
DELIVERY_LIMIT = 2


@pytest.fixture()
def quorum_broker(live_app, vhost, monkeypatch):
    """The test's app publishes as the web would, declaring quorum queues."""
    # The processes the test starts (a scheduler) declare queues with the same limit.
    monkeypatch.setenv("BROKER_DELIVERY_LIMIT", str(DELIVERY_LIMIT))
    broker = publish_to(
        live_app,
        BROKER_URL=vhost.url(),
        BROKER_QUEUE_TYPE="quorum",
        BROKER_DELIVERY_LIMIT=DELIVERY_LIMIT,
    )
    broker.declare_queue("emails", ensure=True)
    yield broker
    broker.close()


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
    live_app,
    quorum_broker,
    vhost,
    quorum_worker,
    start_scheduler,
    smtp_server,
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
    assert found.error_type == "WorkerLost"  # counted by the database, not by RabbitMQ
    outcomes = [a.outcome for a in found.history]
    assert outcomes[-1] == "failed" and set(outcomes[:-1]) == {"interrupted"}
    assert smtp_server.messages == []


def _stop_gracefully(worker, held: set[str], running: str) -> None:
    """SIGTERM the worker while its one thread sends ``running``; once the worker
    has begun shutting down (its threads take nothing new), let that finish."""
    # To the main process only, which passes it on: a second SIGTERM kills.
    os.kill(worker.process.pid, signal.SIGTERM)
    wait_until(
        lambda: "Shutting down..." in worker.log_path.read_text(errors="replace"),
        message="the worker shutting down",
    )
    held.discard(running)
    worker.process.wait(timeout=30)


def test_graceful_restarts_with_a_prefetched_message_do_not_use_up_its_delivery_limit(
    live_app, quorum_broker, vhost, quorum_worker, smtp_server, user_and_admin_headers
):
    # Given workers of one thread each, kept busy by emails the SMTP server holds
    held = {"A", "C", "D"}
    hold(smtp_server.recorder, held)
    user_headers, _ = user_and_admin_headers
    client = live_app.test_client()

    def send(subject: str) -> str:
        body = {"to": f"{subject.lower()}@example.com", "subject": subject, "body": "hi"}
        return client.post("/api/emails", json=body, headers=user_headers).json["job_id"]

    def prefetched(job_id: str) -> bool:  # delivered to a worker, not started
        return vhost.message_count("emails") == 0 and job(live_app, job_id).status == "queued"

    def start():
        return quorum_worker(threads="1", MAIL_TIMEOUT="60")

    first = start()
    a = send("A")
    wait_status(live_app, a, "running")
    b = send("B")
    wait_until(lambda: prefetched(b), message="B in the first worker's prefetch buffer")

    # When the worker holding B is stopped gracefully twice (a rolling restart),
    # each time while a newer worker, busy with another email, takes B over
    second = start()
    c = send("C")
    wait_status(live_app, c, "running")
    _stop_gracefully(first, held, "A")
    wait_until(lambda: prefetched(b), message="B in the second worker's prefetch buffer")
    third = start()
    d = send("D")
    wait_status(live_app, d, "running")
    _stop_gracefully(second, held, "C")
    held.discard("D")

    # Then B, back RabbitMQ's limit of times though it never started, runs once
    wait_status(live_app, b, "succeeded")
    assert [attempt.outcome for attempt in job(live_app, b).history] == ["succeeded"]
    assert "published a fresh copy" in third.log_path.read_text(errors="replace")
    wait_until(lambda: vhost.message_count("emails") == 0, message="the queue drained")
    assert vhost.message_count("emails.XQ") == 0
    assert audit(live_app, smtp_server)["delivered"] == 4


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
