"""A 3-node RabbitMQ cluster with quorum queues loses the node that leads the
``emails`` queue while 500 emails go through: the web side and the workers,
given every node in ``BROKER_URL``, reconnect to the survivors, and every email
is delivered. Duplicates are counted and printed, not forbidden: a worker whose
node died may be sending an email while its redelivered message is taken over
by another worker (the window between SMTP's acceptance and the job's commit)."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from app import auth
from app.db import db
from app.maintenance.relay import relay
from app.models import Job
from tests.support.live_services import publish_to
from tests.support.rabbit_cluster import RabbitCluster
from tests.support.worker import WorkerProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.rabbitmq, pytest.mark.postgres]

EMAILS = 500
KILL_AFTER = 150  # delivered before the leader dies
WORKERS = 2


@pytest.fixture()
def cluster():
    cluster = RabbitCluster(3)
    try:
        yield cluster.start()
    finally:
        cluster.remove()


@pytest.fixture()
def cluster_broker(live_app, cluster):
    """The test's app publishes as the web would, to every node."""
    broker = publish_to(live_app, BROKER_URL=cluster.url, BROKER_QUEUE_TYPE="quorum")
    broker.declare_queue("emails", ensure=True)
    yield broker
    broker.close()


@pytest.fixture()
def cluster_workers(cluster, live_app, smtp_server, tmp_path):
    env = {
        "DATABASE_URL": live_app.config["DATABASE_URL"],
        "BROKER_URL": cluster.url,
        "BROKER_QUEUE_TYPE": "quorum",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_server.port),
        "SECRET_KEY": live_app.config["SECRET_KEY"],
        "RETRY_MIN_BACKOFF_MS": "100",
        "RETRY_MAX_BACKOFF_MS": "1000",
    }
    workers = []
    try:
        for i in range(WORKERS):
            workers.append(WorkerProcess(env, tmp_path / f"worker-{i}.log", threads=4))
        yield workers
    finally:
        for worker in workers:
            worker.discard()


def _send_all(app, headers, job_ids: list, errors: list) -> None:
    client = app.test_client()
    for i in range(EMAILS):
        body = {"to": f"r{i}@example.com", "subject": f"cluster {i}", "body": "hi"}
        answer = client.post("/api/emails", json=body, headers=headers)
        if answer.status_code != 202:
            errors.append((answer.status_code, answer.get_data(as_text=True)))
        else:
            job_ids.append(answer.json["job_id"])


def _relay(app) -> int:
    """What the scheduler's relay would publish: jobs whose publish failed."""
    with app.app_context():
        return relay()["published"]


def _statuses(app) -> Counter:
    with app.app_context():
        return Counter(db.session.scalars(db.select(Job.status)))


def test_killing_the_emails_leader_loses_no_email(
    cluster, cluster_broker, cluster_workers, live_app, smtp_server
):
    with live_app.app_context():
        user = auth.create_user("mass@example.com", "pw")
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
    leader = cluster.leader("emails")
    assert leader is not None, cluster.queues()

    # Given 500 emails being sent through the web side
    job_ids, errors = [], []
    sender = threading.Thread(target=_send_all, args=(live_app, headers, job_ids, errors))
    sender.start()
    wait_until(lambda: len(smtp_server.messages) >= KILL_AFTER, timeout=120, message="first emails")

    # When the node that leads the emails queue dies
    cluster.node_named(leader).kill()
    killed_at = time.monotonic()
    new_leader = wait_until(
        lambda: (name := cluster.leader("emails")) not in (None, leader) and name,
        timeout=60,
        message="a new leader",
    )
    leader_after = time.monotonic() - killed_at
    count_then = len(smtp_server.messages)
    wait_until(
        lambda: len(smtp_server.messages) > count_then,
        timeout=60,
        interval=0.02,
        message="work to resume",
    )
    resumed_after = time.monotonic() - killed_at

    # Then every email is delivered, once the sender is done and the relay has run
    sender.join(timeout=180)
    relayed = _relay(live_app)

    def all_delivered():
        return len({m["Message-ID"] for m in smtp_server.messages}) >= EMAILS

    wait_until(all_delivered, timeout=120, interval=0.2, message="every email delivered")
    wait_until(
        lambda: _statuses(live_app)["succeeded"] == EMAILS, timeout=60, message="jobs succeeded"
    )
    ids = [m["Message-ID"] for m in smtp_server.messages]
    delivered, duplicates = len(set(ids)), len(ids) - len(set(ids))
    print(
        f"\ncluster test: emails sent {len(job_ids)}, delivered {delivered}, "
        f"duplicates {duplicates}, published by the relay {relayed}; leader {leader} killed, "
        f"new leader {new_leader} after {leader_after:.1f}s, work resumed after "
        f"{resumed_after:.1f}s; job states {dict(_statuses(live_app))}"
    )
    assert errors == []
    assert (len(job_ids), delivered) == (EMAILS, EMAILS)
    assert all(worker.process.poll() is None for worker in cluster_workers)
