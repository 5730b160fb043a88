"""The relay publishes what the outbox could not, once, and stops while the broker is down."""

from __future__ import annotations

import dramatiq
import pytest
from sqlalchemy import func, select, update

from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import control, outbox, state
from app.jobs.broker import EXTENSION
from app.maintenance.relay import relay
from app.models import Job
from app.states import JobStatus
from tests.support.down_broker import DownBroker
from tests.support.statements import Statements


@pytest.fixture()
def down_broker(app, stub_broker, monkeypatch):
    down = DownBroker()
    monkeypatch.setitem(app.extensions, EXTENSION, down)
    return down


def _new_job(app) -> str:
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["e"], max_retries=0)
        outbox.commit_and_publish(job)
        return job.id


def test_relay_publishes_each_unpublished_job_once(app, stub_broker, down_broker):
    # Given three jobs whose publish failed
    ids = {_new_job(app) for _ in range(3)}
    # When the broker is back, the relay publishes them, and a second run nothing
    app.extensions[EXTENSION] = stub_broker
    with app.app_context():
        assert relay() == {"published": 3}
        assert relay() == {"published": 0}
    assert {m.message_id for m in _messages(stub_broker, "emails")} == ids


def test_relay_publishes_at_most_its_limit_oldest_first(app, stub_broker, down_broker):
    ids = [_new_job(app) for _ in range(3)]
    app.extensions[EXTENSION] = stub_broker
    with app.app_context():
        assert relay(limit=2) == {"published": 2}
    assert [m.message_id for m in _messages(stub_broker, "emails")] == ids[:2]


def test_a_job_retried_by_hand_while_the_broker_is_down_is_left_to_the_relay(
    app, stub_broker, down_broker
):
    # Given a failed job that was published once
    app.extensions[EXTENSION] = stub_broker
    job_id = _new_job(app)
    stub_broker.flush_all()
    with app.app_context():
        db.session.execute(update(Job).where(Job.id == job_id).values(status=JobStatus.FAILED))
        db.session.commit()
        # When it is retried while the broker is down, it waits for the relay
        app.extensions[EXTENSION] = down_broker
        control.retry(job_id)
        assert db.session.get(Job, job_id, populate_existing=True).published_at is None
        app.extensions[EXTENSION] = stub_broker
        assert relay() == {"published": 1}
    assert [m.message_id for m in _messages(stub_broker, "emails")] == [job_id]


def test_relay_stops_at_the_first_broker_failure(app, down_broker):
    _new_job(app)
    with app.app_context():
        assert relay() == {"published": 0}


def _messages(broker, queue):
    return [dramatiq.Message.decode(data) for data in list(broker.queues[queue].queue)]


def test_jobs_relay_command_publishes_what_waits_and_fails_while_the_broker_is_down(
    app, stub_broker, down_broker
):
    _new_job(app)
    runner = app.test_cli_runner()
    # While the broker is down, the job still waits and the command says so
    down = runner.invoke(args=["jobs", "relay"])
    assert down.exit_code == 1
    assert down.output == "published 0 job(s); 1 still waiting for the broker\n"
    # Once it is back, the command publishes it
    app.extensions[EXTENSION] = stub_broker
    back = runner.invoke(args=["jobs", "relay"])
    assert back.exit_code == 0
    assert back.output == "published 1 job(s); 0 still waiting for the broker\n"


def _unpublished_jobs(app, count: int) -> list[str]:
    with app.app_context():
        jobs = [state.new_job_values(SEND_EMAIL, args=[n], user_id=None) for n in range(count)]
        outbox.insert_jobs(jobs)
        db.session.execute(update(Job).values(published_at=None))
        db.session.commit()
        return [job["id"] for job in jobs]


def _relay_counting(app, monkeypatch, **options):
    """Relay, counting its statements and its broker's batch publishes."""
    broker = app.extensions[EXTENSION]
    batches = []
    publish_many = broker.publish_many
    monkeypatch.setattr(
        broker,
        "publish_many",
        lambda messages, **kw: batches.append(len(messages)) or publish_many(messages, **kw),
    )
    with app.app_context(), Statements(db.engine) as statements:
        summary = relay(**options)
    return summary, batches, statements


def test_relay_publishes_each_batch_with_one_confirm_wait_and_one_update(
    app, stub_broker, monkeypatch
):
    # Given 250 jobs waiting for the relay
    ids = _unpublished_jobs(app, 250)

    # When it relays them 100 at a time
    summary, batches, statements = _relay_counting(app, monkeypatch, batch=100)

    # Then each batch was one publish, one SELECT and one UPDATE
    assert summary == {"published": 250}
    assert batches == [100, 100, 50]
    assert statements.count("UPDATE") == 3
    assert statements.count("SELECT") == 4  # the last one finds nothing
    assert sorted(m.message_id for m in _messages(stub_broker, "emails")) == sorted(ids)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(outbox.unpublished())) == 0


def test_relay_marks_what_the_broker_confirmed_and_stops_at_a_batch_it_did_not_confirm(
    app, stub_broker, monkeypatch
):
    ids = _unpublished_jobs(app, 6)
    refused = ids[1]
    publish_many = stub_broker.publish_many
    monkeypatch.setattr(
        stub_broker,
        "publish_many",
        lambda messages, **kw: publish_many([m for m in messages if m.message_id != refused], **kw),
    )

    with app.app_context():
        summary = relay(batch=3)
        waiting = set(db.session.scalars(select(Job.id).where(outbox.unpublished())))

    # The first batch lost one: its other two are published, the next batch waits
    assert summary == {"published": 2}
    assert waiting == {refused, *ids[3:]}


@pytest.mark.rabbitmq
@pytest.mark.postgres
def test_relay_on_postgres_and_rabbitmq_is_one_select_one_publish_and_one_update_per_batch(
    live_app, rabbit_broker, monkeypatch
):
    ids = _unpublished_jobs(live_app, 1200)

    summary, batches, statements = _relay_counting(live_app, monkeypatch, batch=500)

    assert summary == {"published": 1200}
    assert batches == [500, 500, 200]
    updates = [s for s in statements.seen if s.startswith("UPDATE")]
    # one statement of fixed shape, whatever the batch's size
    assert len(updates) == 3 and len(set(updates)) == 1
    assert "= ANY (" in updates[0]
    assert rabbit_broker.get_queue_message_counts("emails")[0] == len(ids)
    with live_app.app_context():
        assert db.session.scalar(select(func.count()).where(outbox.unpublished())) == 0
