"""An SMTP server that has the whole message and answers the end of DATA late."""

from __future__ import annotations

import pytest

from app.maintenance.resend import resend_failed_emails
from tests.support.audit import audit
from tests.support.jobs import job, send_emails, wait_status

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

LATE_S = 8  # the server's answer to the final "."


@pytest.fixture()
def late_server(smtp_server):
    smtp_server.recorder.keep_when_late = True
    smtp_server.recorder.delay_s = LATE_S
    return smtp_server


def test_end_of_data_unanswered_within_mail_data_timeout_fails_once_and_is_not_resent(
    live_app, rabbit_broker, start_worker, late_server, proxies, headers
):
    # Given a server that keeps the message and answers its end after 8 s,
    # and a worker that waits 2 s for that answer
    start_worker(**proxies.env, MAIL_DATA_TIMEOUT="2")  # and MAIL_TIMEOUT=2
    [sent] = send_emails(live_app, headers, 1)

    # When the wait runs out, the job fails at once: a retry could send a second copy
    wait_status(live_app, sent["job_id"], "failed", timeout=30)
    failed = job(live_app, sent["job_id"])
    assert (failed.attempts, failed.error_type) == (1, "DeliveryUnconfirmed")
    assert "may have the message" in failed.error_message
    assert len(late_server.messages) == 1

    # Then the scheduled resend leaves it to an admin, however long it has failed
    live_app.config["RESEND_INTERVAL_S"] = 0
    with live_app.app_context():
        assert resend_failed_emails() == {"resent": 0}
    assert job(live_app, sent["job_id"]).status == "failed"
    assert audit(live_app, late_server, jobs="failed")["delivered"] == 1


def test_end_of_data_answered_late_within_mail_data_timeout_is_sent_once_in_one_attempt(
    live_app, rabbit_broker, start_worker, late_server, proxies, headers
):
    # Given the same server, and a worker whose MAIL_TIMEOUT (2 s) is shorter than
    # the server's 8 s, but whose MAIL_DATA_TIMEOUT is not
    start_worker(**proxies.env, MAIL_DATA_TIMEOUT="20")
    [sent] = send_emails(live_app, headers, 1)

    # Then MAIL_DATA_TIMEOUT bounds the wait: the email is sent once, in one attempt
    wait_status(live_app, sent["job_id"], "succeeded", timeout=40)
    assert job(live_app, sent["job_id"]).attempts == 1
    assert audit(live_app, late_server)["delivered"] == 1
