"""A whole run of web, worker and scheduler logs no secret: not a user's
password, not an API token, not the SMTP password, the secret key nor the
broker's password. Everything logs at DEBUG, where leaks hide."""

from __future__ import annotations

import logging
import re

import pytest

from app import auth
from app.db import db
from app.models import Job
from tests.support.scheduler import SchedulerProcess
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

PASSWORD = "user-password-Kx81Q"
WRONG_PASSWORD = "wrong-password-Zr42P"
SMTP_PASSWORD = "smtp-password-Jq77W"


def test_logs_of_web_worker_and_scheduler_hold_no_secret(
    live_app, rabbit_broker, start_worker, worker_env, vhost, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    secret_env = {"MAIL_PASSWORD": SMTP_PASSWORD, "LOG_LEVEL": "DEBUG"}
    worker = start_worker(**secret_env)
    scheduler = SchedulerProcess(
        {**worker_env, **secret_env, "RELAY_INTERVAL_S": "1", "CLEANUP_INTERVAL_S": "2"},
        tmp_path / "scheduler.log",
    )
    live_app.config["MAIL_PASSWORD"] = SMTP_PASSWORD
    try:
        with live_app.app_context():
            auth.create_user("dave@example.com", PASSWORD)
        client = live_app.test_client()
        # Web: a failed and a good sign-in on the API and on the page, then real work
        client.post("/api/tokens", json={"email": "dave@example.com", "password": WRONG_PASSWORD})
        token = client.post(
            "/api/tokens", json={"email": "dave@example.com", "password": PASSWORD}
        ).json["token"]
        headers = {"Authorization": f"Bearer {token}"}
        html = client.get("/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', html)[1]
        client.post(
            "/login", data={"email": "dave@example.com", "password": PASSWORD, "csrf_token": csrf}
        )
        job_id = client.post(
            "/api/emails",
            json={"to": "c@example.com", "subject": "s", "body": "b"},
            headers=headers,
        ).json["job_id"]
        client.get("/api/jobs", headers={"Authorization": "Bearer not-a-token"})

        def succeeded():
            with live_app.app_context():
                return db.session.get(Job, job_id).status == "succeeded"

        wait_until(succeeded, message="email sent by the worker")
        wait_until(
            lambda: (
                "published" in scheduler.log_path.read_text(errors="replace")
                or "cleanup" in scheduler.log_path.read_text(errors="replace")
            ),
            message="the scheduler ran something",
        )
    finally:
        scheduler.stop()
        worker.stop()

    logs = {
        "web": "\n".join(
            record.getMessage() + str(record.exc_info or "") for record in caplog.records
        ),
        "worker": worker.log_path.read_text(errors="replace"),
        "scheduler": scheduler.log_path.read_text(errors="replace"),
    }
    assert logs["worker"] and logs["scheduler"]  # there was something to look at
    secrets = {
        "password": PASSWORD,
        "wrong password": WRONG_PASSWORD,
        "API token": token,
        "SMTP password": SMTP_PASSWORD,
        "secret key": live_app.config["SECRET_KEY"],
        "broker URL with password": vhost.url(),
    }
    leaks = [
        f"{what} in the {process} log"
        for process, text in logs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert leaks == []
