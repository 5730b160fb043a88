"""Retrying and cancelling many jobs at once (``control.retry_many``,
``cancel_many``), as the admin pages, the CLI and the resend do: in batches of
one conditional UPDATE, one commit and one batched publish, on SQLite and on
PostgreSQL; every job changed once, whoever else acts on it at the same time."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from sqlalchemy import select

from app import create_app
from app.db import db
from app.jobs import control
from app.models import Job
from tests.support import factories
from tests.support.down_broker import DownBroker
from tests.support.live_services import publish_to
from tests.support.statements import Statements


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def bulk_app(request, app):
    """The test's app on SQLite, or on a PostgreSQL database of its own; either
    publishes to an in-memory broker."""
    if request.param == "sqlite":
        yield app
        return
    postgres = request.getfixturevalue("postgres")
    on_postgres = create_app({"TESTING": True, "DATABASE_URL": postgres.url()})
    yield on_postgres
    with on_postgres.app_context():
        db.engine.dispose()


def _broker(app):
    broker = publish_to(app, BROKER_URL="stub://")
    for actor in dramatiq.get_broker().actors.values():
        broker.declare_actor(actor)
    return broker


def _failed_jobs(app, count: int, **values) -> list[str]:
    with app.app_context():
        jobs = [factories.job(status="failed", args=[f"e{n}"], **values) for n in range(count)]
        db.session.commit()
        return [job.id for job in jobs]


def _rows(app, job_ids):
    with app.app_context():
        return {job.id: job for job in db.session.scalars(select(Job).where(Job.id.in_(job_ids)))}


def _published_ids(broker) -> list[str]:
    return [
        dramatiq.Message.decode(data).message_id
        for queue in broker.queues.values()
        for data in queue.queue
    ]


def test_retry_many_requeues_and_publishes_every_job_once_in_batches(bulk_app):
    broker = _broker(bulk_app)
    job_ids = _failed_jobs(bulk_app, 2 * control.BATCH + 5)
    with bulk_app.app_context():
        with Statements(db.engine) as statements:
            assert control.retry_many(job_ids) == (len(job_ids), 0)
        # Per batch: a SAVEPOINT and its release, the UPDATE, the commit (the
        # email kind has no requeue hook); three batches, whatever their size.
        updates = [text for text in statements.seen if text.split()[0].upper() == "UPDATE"]
        assert len(updates) == 3
        if db.engine.dialect.name == "postgresql":  # ids as one array: one text for any size
            assert len(set(updates)) == 1

    rows = _rows(bulk_app, job_ids)
    assert {(job.status, job.series, job.retries) for job in rows.values()} == {("queued", 1, 0)}
    assert all(job.published_at is not None for job in rows.values())
    published = _published_ids(broker)
    assert sorted(published) == sorted(job_ids)


def test_retry_many_skips_what_moved_on_and_what_is_unknown(bulk_app):
    _broker(bulk_app)
    failed = _failed_jobs(bulk_app, 3)
    with bulk_app.app_context():
        running = factories.job(status="running").id
        db.session.commit()

        assert control.retry_many([*failed, running, "no-such-job"]) == (3, 2)
        assert control.retry_many(failed) == (0, 3)  # retried already: queued now

    assert _rows(bulk_app, [running])[running].status == "running"


@pytest.mark.postgres
def test_two_bulk_retries_at_once_requeue_each_job_once(postgres):
    app = create_app({"TESTING": True, "DATABASE_URL": postgres.url()})
    try:
        broker = _broker(app)
        job_ids = _failed_jobs(app, 1500)
        results: list[tuple[int, int]] = []
        start = threading.Barrier(2)

        def retry_all():
            with app.app_context():
                start.wait()
                results.append(control.retry_many(job_ids))

        threads = [threading.Thread(target=retry_all) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sum(retried for retried, _ in results) == 1500
        assert sum(skipped for _, skipped in results) == 1500
        rows = _rows(app, job_ids)
        assert {job.series for job in rows.values()} == {1}
        published = _published_ids(broker)
        assert sorted(published) == sorted(job_ids)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_a_bulk_retry_while_the_broker_is_down_leaves_every_job_to_the_relay(
    app, stub_broker, monkeypatch
):
    job_ids = _failed_jobs(app, 30)
    down = DownBroker()
    monkeypatch.setitem(app.extensions, "dramatiq", down)
    with app.app_context():
        assert control.retry_many(job_ids) == (30, 0)
    rows = _rows(app, job_ids)
    assert {(job.status, job.series, job.published_at) for job in rows.values()} == {
        ("queued", 1, None)
    }


def test_cancel_many_cancels_in_batches_and_skips_what_cannot_be_cancelled(bulk_app):
    _broker(bulk_app)
    with bulk_app.app_context():
        cancellable = [
            factories.job(status=status).id
            for status in ["queued", "retrying", "failed"] * (control.BATCH // 2)
        ]
        others = [factories.job(status=status).id for status in ("running", "succeeded")]
        db.session.commit()

        with Statements(db.engine) as statements:
            assert control.cancel_many([*cancellable, *others]) == (len(cancellable), 2)
        assert statements.count("UPDATE") == 2  # two batches

    rows = _rows(bulk_app, [*cancellable, *others])
    assert {rows[job_id].status for job_id in cancellable} == {"cancelled"}
    assert all(rows[job_id].finished_at is not None for job_id in cancellable)
    assert [rows[job_id].status for job_id in others] == ["running", "succeeded"]
