"""An email from the API to a real SMTP server, through RabbitMQ and a real worker."""

from __future__ import annotations

import pytest

from app import auth
from app.db import db
from app.models import Email, Job
from tests.support.live_services import publish_to
from tests.support.proxy import TcpProxy
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAIL = {"to": "carol@example.com", "subject": "Hello", "body": "Hi Carol"}


@pytest.fixture()
def headers(live_app):
    with live_app.app_context():
        user = auth.create_user("dave@example.com", "pw")
        return {"Authorization": f"Bearer {auth.issue_token(user)}"}


def _job(app, job_id) -> dict:
    with app.test_client() as client:
        with app.app_context():
            user_id = db.session.get(Job, job_id).user_id
            token = auth.issue_token(db.session.get(auth.User, user_id))
        return client.get(f"/api/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}).json


def _status(app, job_id) -> str:
    with app.app_context():
        return db.session.get(Job, job_id).status


def test_email_is_delivered_by_a_worker_and_its_job_succeeds(
    live_app, rabbit_broker, start_worker, smtp_server, headers
):
    start_worker()
    response = live_app.test_client().post("/api/emails", json=EMAIL, headers=headers)
    assert response.status_code == 202
    job_id, email_id = response.json["job_id"], response.json["email_id"]

    wait_until(lambda: _status(live_app, job_id) == "succeeded", message="job succeeded")

    job = _job(live_app, job_id)
    assert [entry["outcome"] for entry in job["history"]] == ["succeeded"]
    email = live_app.test_client().get(f"/api/emails/{email_id}", headers=headers).json
    assert email["status"] == "sent"
    [message] = smtp_server.messages
    assert message["To"] == EMAIL["to"]
    with live_app.app_context():
        assert message["Message-ID"] == db.session.get(Email, email_id).message_id


def test_request_during_broker_outage_is_accepted_and_relayed_exactly_once(
    live_app, vhost, start_worker, smtp_server, headers
):
    # Given the web reaches RabbitMQ through a connection we can cut
    proxy = TcpProxy(RABBITMQ_HOST, RABBITMQ_PORT).start()
    web_broker = publish_to(live_app, BROKER_URL=vhost.url(port=proxy.port))
    try:
        proxy.stop()
        # When a request comes while RabbitMQ is unreachable
        response = live_app.test_client().post("/api/emails", json=EMAIL, headers=headers)
        # Then it is accepted all the same, and the job waits unpublished
        assert response.status_code == 202
        job_id = response.json["job_id"]
        with live_app.app_context():
            job = db.session.get(Job, job_id)
            assert (job.status, job.published_at) == ("queued", None)

        # When RabbitMQ is back and the relay runs (twice, to show it publishes once)
        proxy.start()
        runner = live_app.test_cli_runner()
        first = runner.invoke(args=["jobs", "relay"])
        second = runner.invoke(args=["jobs", "relay"])
        assert first.exit_code == 0, first.output
        assert "published 1 job(s)" in first.output
        assert "published 0 job(s)" in second.output

        # Then a worker delivers the email exactly once
        start_worker()
        wait_until(lambda: _status(live_app, job_id) == "succeeded", message="job succeeded")
        assert len(smtp_server.messages) == 1
        assert vhost.message_count("emails") == 0
    finally:
        web_broker.close()
        proxy.stop()
