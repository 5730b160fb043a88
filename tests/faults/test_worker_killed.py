"""Workers SIGKILLed mid-job, and stopped with SIGTERM mid-job.

A killed worker's lease expires (JOB_LEASE_S); the scheduler's relay then finds
its running jobs and publishes them once more; the first copy to arrive takes
the job over, exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from app.db import db
from app.maintenance.cleanup import remove_stray_files
from app.seed import seed_posts
from tests.support.audit import audit
from tests.support.jobs import all_in, email_attempts, every_job_is, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_worker_killed_while_the_smtp_server_decides_is_taken_over_and_sends_once(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given a worker whose email the SMTP server takes 5 s to accept
    smtp_server.recorder.delay_s = 5
    first = start_worker(**{**proxies.env, "MAIL_TIMEOUT": "30"})
    [sent] = send_emails(live_app, headers, 1)
    wait_until(lambda: email_attempts(live_app, sent["email_id"]) == 1, message="sending")

    # When it is SIGKILLed before the server said 250, and another worker and a
    # scheduler run (the server answers at once from now on)
    first.kill()
    smtp_server.recorder.delay_s = 0
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)

    # Then the job is taken over once its lease expired, and the email sent once
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=40)
    assert outcomes(live_app, sent["job_id"]) == [
        "interrupted",
        "succeeded",
    ]
    assert audit(live_app, smtp_server)["delivered"] == 1


def test_worker_killed_after_its_success_was_committed_sends_nothing_again(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker held still after the job's success is committed, before the ack
    paused = start_worker("tests.support.pause_after_success", **proxies.env)
    [sent] = send_emails(live_app, headers, 1)
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), message="succeeded")

    # When it is SIGKILLed, RabbitMQ hands the unacked message to another worker
    paused.kill()
    start_worker(**proxies.env)
    wait_until(lambda: rabbit_broker.get_queue_message_counts("emails")[0] == 0, timeout=20)
    time.sleep(2)  # room for the copy to run, were it going to

    # Then the copy found the job finished: one attempt, sent once
    assert outcomes(live_app, sent["job_id"]) == ["succeeded"]
    assert audit(live_app, smtp_server)["delivered"] == 1


def test_worker_killed_mid_export_is_taken_over_and_the_file_is_whole(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    with live_app.app_context():
        user_id = db.session.scalar(db.text("SELECT id FROM users"))
        seed_posts(user_id, 2000)
    export_dir = Path(live_app.config["EXPORT_DIR"])
    # Given a worker writing an export slowly
    slow = start_worker("tests.support.slow_export", **proxies.env)
    created = (
        live_app.test_client()
        .post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
        .json
    )
    wait_until(lambda: list((export_dir / ".partial").glob("*")), message="half written")

    # When it is SIGKILLed mid-export, and another worker and a scheduler run
    slow.kill()
    assert not list(export_dir.glob("*.csv"))  # the partial file is not the export's file
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)

    # Then the export is taken over, completes once, and its file is whole
    job_ids = [created["job_id"]]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=60, message="export")
    assert outcomes(live_app, created["job_id"]) == [
        "interrupted",
        "succeeded",
    ]
    wait_until(lambda: len(smtp_server.messages) == 1, message="the export's email")
    wait_until(lambda: every_job_is(live_app, "succeeded"), message="the email's job")
    with live_app.app_context():
        remove_stray_files()  # cleanup's part: the dead attempt's own partial file
    counts = audit(live_app, smtp_server)
    assert (counts["exports"], counts["delivered"]) == (1, 1)


@pytest.mark.slow
def test_worker_killed_under_1000_jobs_loses_none_and_duplicates_only_in_flight_sends(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given 1,000 emails going through a worker with 8 threads (no hourly quota)
    live_app.config["USER_EMAILS_PER_HOUR"] = 0
    first = start_worker(**proxies.env, threads=8)
    sent = send_emails(live_app, headers, 1000)
    wait_until(lambda: len(smtp_server.messages) >= 300, timeout=60, message="300 sent")

    # When it is SIGKILLed mid-stream, and another worker and a scheduler take over
    first.kill()
    start_worker(**proxies.env, threads=8)
    start_scheduler(**proxies.env)

    # Then every email is delivered; only sends in flight at the kill may repeat
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=120, message="all")
    counts = audit(live_app, smtp_server, duplicates_allowed=8)
    assert counts["emails"] == 1000


def test_sigterm_lets_the_running_job_finish_before_the_worker_exits(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker sending an email to a server that answers after 3 s
    smtp_server.recorder.delay_s = 3
    worker = start_worker(**{**proxies.env, "MAIL_TIMEOUT": "30"})
    [sent] = send_emails(live_app, headers, 1)
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "running"), message="running")

    # When it is asked to stop
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=30)

    # Then it finished the job first: one attempt, sent once
    assert outcomes(live_app, sent["job_id"]) == ["succeeded"]
    assert audit(live_app, smtp_server)["delivered"] == 1
