"""A worker process's lease: its row is made at the first renewal and renewed
after, timed by the database's clock, and deleted when released."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.db import database_now, db
from app.jobs.workers import WorkerLease
from app.models import Worker
from tests.support import local_clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_app(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "live_app")


def _row(app, worker_id) -> Worker | None:
    with app.app_context():
        return db.session.get(Worker, worker_id)


def test_the_first_renewal_registers_the_process_and_later_ones_keep_its_start(any_app):
    lease = WorkerLease(any_app, ["exports", "emails"])
    lease.renew()
    first = _row(any_app, lease.id)
    assert (first.queues, first.claimed) == (["emails", "exports"], {})
    lease.note_claim("emails", first.started_at)
    lease.renew()
    again = _row(any_app, lease.id)
    assert again.started_at == first.started_at
    assert again.expires_at > first.expires_at
    assert again.claimed == {"emails": first.started_at.isoformat()}
    lease.stop()
    assert _row(any_app, lease.id) is None
    assert not lease.live()


@pytest.mark.postgres
def test_a_worker_whose_clock_runs_minutes_ahead_leases_by_the_databases_clock(
    live_app, monkeypatch
):
    local_clock.skewed(monkeypatch)(timedelta(minutes=5))
    lease = WorkerLease(live_app, ["emails"])
    lease.renew()
    try:
        with live_app.app_context():
            row, now = db.session.get(Worker, lease.id), database_now()
            assert now - timedelta(seconds=5) < row.started_at <= now
            assert row.expires_at <= now + lease.lease
    finally:
        lease.stop()
