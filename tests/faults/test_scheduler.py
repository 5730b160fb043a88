"""Several schedulers at once: each tick enqueued exactly once, leadership handed
over when the leader dies, the lease given up at once on SIGTERM."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta

import pika
import pytest

from app import auth
from app.db import db, utcnow
from app.email_queue import new_email
from app.jobs import outbox
from app.models import Job, SchedulerLease
from tests.support.scheduler import SchedulerProcess
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

INTERVAL_S = 3
LEASE_S = 2  # shorter than the interval: a takeover finishes before a second tick falls due


@pytest.fixture()
def start_scheduler(live_app, vhost, tmp_path):
    schedulers: list[SchedulerProcess] = []
    env = {
        "DATABASE_URL": live_app.config["DATABASE_URL"],
        "BROKER_URL": vhost.url(),
        "SECRET_KEY": live_app.config["SECRET_KEY"],
        "RESEND_INTERVAL_S": str(INTERVAL_S),
        "CLEANUP_INTERVAL_S": str(INTERVAL_S),
        "RELAY_INTERVAL_S": "1",
        "SCHEDULER_LEASE_S": str(LEASE_S),
    }

    def start() -> SchedulerProcess:
        process = SchedulerProcess(env, tmp_path / f"scheduler-{len(schedulers)}.log")
        schedulers.append(process)
        return process

    yield start
    for process in schedulers:
        process.discard()


def _ticks(app, actor: str) -> list[datetime]:
    with app.app_context():
        keys = db.session.scalars(db.select(Job.unique_key).where(Job.actor == actor)).all()
    return sorted(datetime.fromisoformat(key.split("@", 1)[1]) for key in keys)


def _assert_every_tick_once(ticks: list[datetime]) -> None:
    assert len(ticks) == len(set(ticks)), "a tick was enqueued twice"
    gaps = {later - earlier for earlier, later in zip(ticks, ticks[1:], strict=False)}
    assert gaps <= {timedelta(seconds=INTERVAL_S)}, f"a tick was lost: {ticks}"


def _holder(app) -> str | None:
    with app.app_context():
        lease = db.session.get(SchedulerLease, "scheduler")
        return lease.holder if lease and lease.expires_at > utcnow() else None


def test_three_schedulers_enqueue_each_tick_once_and_survive_losing_their_leader(
    live_app, start_scheduler
):
    schedulers = {s.process.pid: s for s in (start_scheduler() for _ in range(3))}
    wait_until(lambda: len(_ticks(live_app, "cleanup")) >= 3, timeout=20, message="3 ticks")
    _assert_every_tick_once(_ticks(live_app, "cleanup"))

    # When the leader is killed outright
    leader_pid = int(_holder(live_app).split(":")[1])
    schedulers.pop(leader_pid).signal(signal.SIGKILL)
    before = len(_ticks(live_app, "cleanup"))

    # Then another takes over within the lease time, losing and doubling no tick
    wait_until(
        lambda: (_holder(live_app) or "").split(":")[1:2] not in ([], [str(leader_pid)]),
        timeout=LEASE_S + 3,
        message="a new leader",
    )
    wait_until(lambda: len(_ticks(live_app, "cleanup")) >= before + 2, timeout=15, message="ticks")
    for actor in ("cleanup", "resend_failed_emails"):
        _assert_every_tick_once(_ticks(live_app, actor))

    # When the new leader is stopped with SIGTERM, it gives the lease up at once
    new_pid = int(_holder(live_app).split(":")[1])
    schedulers.pop(new_pid).signal(signal.SIGTERM)
    assert _holder(live_app) is None or _holder(live_app).split(":")[1] != str(new_pid)
    [last] = schedulers.values()
    wait_until(
        lambda: (_holder(live_app) or "").split(":")[1:2] == [str(last.process.pid)],
        timeout=LEASE_S,
        message="the last scheduler to lead",
    )
    time.sleep(INTERVAL_S + 1)
    _assert_every_tick_once(_ticks(live_app, "cleanup"))


def test_job_whose_message_was_deleted_from_rabbitmq_is_rescued_and_runs_once(
    live_app, rabbit_broker, vhost, start_worker, worker_env, tmp_path, smtp_server
):
    # Given an email job published to RabbitMQ, whose message is then purged
    with live_app.app_context():
        user = auth.create_user("max@example.com", "pw")
        _, job = new_email(user_id=user.id, to="m@example.com", subject="s", body="b")
        outbox.commit_and_publish(job)
        job_id = job.id
    connection = pika.BlockingConnection(pika.URLParameters(vhost.url()))
    connection.channel().queue_purge("emails")
    connection.close()

    # When a worker serves the queue and the relay runs every second (a grace of 6 s)
    start_worker()
    scheduler = SchedulerProcess({**worker_env, "RELAY_INTERVAL_S": "1"}, tmp_path / "rescuer.log")

    # Then the job is rescued once the worker has served its queue for a grace
    # window without meeting the message, and runs once
    def succeeded():
        with live_app.app_context():
            return db.session.get(Job, job_id).status == "succeeded"

    try:
        wait_until(succeeded, timeout=40, message="the rescued job to succeed")
    finally:
        scheduler.stop()
    with live_app.app_context():
        found = db.session.get(Job, job_id)
        assert (found.attempts, found.rescues) == (1, 0)  # claimed: the count starts again
    assert len(smtp_server.messages) == 1


def test_a_scheduled_email_due_as_its_leader_is_killed_is_sent_once(
    live_app, rabbit_broker, start_worker, start_scheduler, smtp_server
):
    # Given two schedulers and an email scheduled for a few seconds from now
    start_worker()
    schedulers = {s.process.pid: s for s in (start_scheduler() for _ in range(2))}
    with live_app.app_context():
        user = auth.create_user("sue@example.com", "pw")
        token = auth.issue_token(user)
    wait_until(lambda: _holder(live_app) is not None, timeout=15, message="a leader")
    send_at = (utcnow() + timedelta(seconds=3)).isoformat()
    response = live_app.test_client().post(
        "/api/emails",
        json={"to": "s@example.com", "subject": "s", "body": "b", "send_at": send_at},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]

    # When the leader is killed outright at the moment the email falls due
    time.sleep(max(0.0, (datetime.fromisoformat(send_at) - utcnow()).total_seconds()))
    leader_pid = int(_holder(live_app).split(":")[1])
    schedulers.pop(leader_pid).signal(signal.SIGKILL)

    # Then the other queues it, and it is sent once
    def status() -> str:
        with live_app.app_context():
            return db.session.get(Job, job_id).status

    wait_until(lambda: status() == "succeeded", timeout=30, message="sent")
    time.sleep(2)  # room for a second copy, were one coming
    assert [m["To"] for m in smtp_server.messages] == ["s@example.com"]
