"""A worker's broker connection is cut while a job runs: Dramatiq opens a new
channel, whose delivery tags start again at 1. The running job's ack, when it
finishes, must not go out with its old tag on the new channel, where that tag
names another message still in progress (app/rabbitmq.py's consumer)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.audit import audit
from tests.support.held_smtp import hold
from tests.support.jobs import outcomes, wait_status
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _unacked(vhost, queue: str) -> int:
    listed = subprocess.run(
        [
            "rabbitmqctl",
            "list_queues",
            "-p",
            vhost.name,
            "-q",
            "--formatter",
            "json",
            "name",
            "messages_unacknowledged",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {row["name"]: row["messages_unacknowledged"] for row in json.loads(listed.stdout)}[queue]


def test_an_ack_from_before_a_reconnect_does_not_ack_a_message_of_the_new_channel(
    live_app, rabbit_broker, vhost, start_worker, smtp_server, proxies, headers
):
    held: set[str] = set()
    hold(smtp_server.recorder, held)
    client = live_app.test_client()
    worker = start_worker(**{**proxies.env, "MAIL_TIMEOUT": "60"})

    def send(subject: str) -> str:
        body = {"to": "kim@example.com", "subject": subject, "body": "hi"}
        return client.post("/api/emails", json=body, headers=headers).json["job_id"]

    def logged(text: str) -> bool:
        return text in worker.log_path.read_text(errors="replace")

    # Given a worker whose channel delivered one email (tag 1) and is sending a
    # second one (tag 2)
    wait_status(live_app, send("first"), "succeeded")
    held.update({"old", "new"})
    old = send("old")
    wait_status(live_app, old, "running")

    # When its broker connection is cut for 1 s: the new channel gets the old
    # email's requeued copy (tag 1, skipped: the job runs under a live lease),
    # then another email (tag 2) that is still being sent when the old one ends
    proxies.broker.cut(1)
    wait_until(lambda: logged(f"job {old} is not runnable now"), message="the copy skipped")
    new = send("new")
    wait_status(live_app, new, "running")
    held.discard("old")
    wait_status(live_app, old, "succeeded")

    # Then the old email's ack is not sent, and the new one stays unacknowledged
    wait_until(lambda: logged(f"not sending the ack of message {old}"), message="ack dropped")
    assert _unacked(vhost, "emails") == 1
    held.discard("new")
    wait_status(live_app, new, "succeeded")
    wait_until(lambda: _unacked(vhost, "emails") == 0, message="the new email acked")
    assert vhost.message_count("emails") == 0
    assert not logged("not in known tags")
    for job_id in (old, new):
        assert outcomes(live_app, job_id) == ["succeeded"]
    assert audit(live_app, smtp_server)["delivered"] == 3
