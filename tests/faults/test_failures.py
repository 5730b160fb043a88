"""Dead letters and retries against the real RabbitMQ, PostgreSQL and workers."""

from __future__ import annotations

import threading

import pika
import pytest

from tests.support.jobs import job, wait_status
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAIL = {"to": "lee@example.com", "subject": "Hi", "body": "Hello"}
MAX_RETRIES = 2


def test_exhausted_retries_dead_letter_the_message_and_fail_the_job(
    live_app, rabbit_broker, vhost, start_worker, smtp_server, user_and_admin_headers
):
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    live_app.config["EMAIL_MAX_RETRIES"] = MAX_RETRIES  # a job's retries are set when it is created
    start_worker()
    user_headers, _ = user_and_admin_headers
    ids = live_app.test_client().post("/api/emails", json=EMAIL, headers=user_headers).json

    wait_status(live_app, ids["job_id"], "failed")
    found = job(live_app, ids["job_id"])
    assert len(found.history) == MAX_RETRIES + 1
    assert all(
        a.outcome == "failed" and a.error_type == "SMTPTemporaryError" for a in found.history
    )
    assert (found.error_type, found.finished_at is not None) == ("SMTPTemporaryError", True)
    wait_until(lambda: vhost.message_count("emails.XQ") == 1, message="the dead letter")
    email = live_app.test_client().get(f"/api/emails/{ids['email_id']}", headers=user_headers)
    assert email.json["status"] == "failed"


def test_poison_message_is_dead_lettered_and_the_worker_goes_on(
    live_app, rabbit_broker, vhost, start_worker, smtp_server, user_and_admin_headers
):
    worker = start_worker()
    # The queues exist before the garbage arrives (the worker may still be declaring them)
    rabbit_broker.declare_queue("emails", ensure=True)
    # Garbage bytes straight onto the queue, as a broken producer would send
    connection = pika.BlockingConnection(pika.URLParameters(vhost.url()))
    connection.channel().basic_publish(exchange="", routing_key="emails", body=b"\x00\xffnot json")
    connection.close()
    wait_until(lambda: vhost.message_count("emails.XQ") == 1, message="the poison message")

    user_headers, _ = user_and_admin_headers
    ids = live_app.test_client().post("/api/emails", json=EMAIL, headers=user_headers).json
    wait_status(live_app, ids["job_id"], "succeeded")
    assert worker.process.poll() is None
    assert len(smtp_server.messages) == 1


def test_two_concurrent_retries_of_a_failed_job_run_it_once(
    live_app, rabbit_broker, start_worker, smtp_server, user_and_admin_headers
):
    # Given a failed email job (the recipient was refused), then the fault is fixed
    smtp_server.recorder.rcpt_reply = "550 5.1.1 no such user"
    start_worker()
    user_headers, admin_headers = user_and_admin_headers
    ids = live_app.test_client().post("/api/emails", json=EMAIL, headers=user_headers).json
    wait_status(live_app, ids["job_id"], "failed")
    smtp_server.recorder.rcpt_reply = None

    # When two admins click Retry at the same moment
    barrier, answers = threading.Barrier(2), []

    def click():
        client = live_app.test_client()
        barrier.wait()
        answers.append(client.post(f"/api/jobs/{ids['job_id']}/retry", headers=admin_headers))

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then one retry is accepted, the other refused, and the job runs once
    assert sorted(r.status_code for r in answers) == [202, 409]
    wait_status(live_app, ids["job_id"], "succeeded")
    found = job(live_app, ids["job_id"])
    assert [a.outcome for a in found.history] == ["failed", "succeeded"]
    assert len(smtp_server.messages) == 1
