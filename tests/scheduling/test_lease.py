"""The scheduler lease: held by one scheduler until it expires or is released,
timed by the database's clock (a scheduler whose clock is off by minutes neither
takes a live lease nor keeps a dead one)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from app.db import database_now, db
from app.scheduling import lease, status
from tests.support import local_clock

MINUTES = timedelta(minutes=5)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_app(request):
    return request.getfixturevalue("app" if request.param == "sqlite" else "live_app")


@pytest.fixture()
def clock_off(monkeypatch):
    return local_clock.skewed(monkeypatch)


def _expire(app) -> None:
    """Wait until the lease has expired by the database's clock."""
    with app.app_context():
        expires = lease.current().expires_at
        deadline = time.monotonic() + 10
        while database_now() <= expires and time.monotonic() < deadline:
            db.session.rollback()  # a new transaction: PostgreSQL's now() moves on
            time.sleep(0.05)


def test_lease_is_held_by_one_scheduler_until_it_expires_or_is_released(any_app):
    with any_app.app_context():
        assert lease.acquire("a", 30)
        assert not lease.acquire("b", 30)
        assert lease.acquire("a", 30)  # renewal
        assert status.leader()["holder"] == "a"
    # The holder dies: once the lease expired, it is taken over
    with any_app.app_context():
        assert lease.acquire("a", 0.5)
    _expire(any_app)
    with any_app.app_context():
        assert status.leader() is None
        assert lease.acquire("b", 30)
        assert not lease.acquire("a", 30)
        lease.release("b")
        assert status.leader() is None
        assert lease.acquire("a", 30)  # given up at once on SIGTERM


@pytest.mark.postgres
def test_a_scheduler_whose_clock_runs_minutes_ahead_does_not_take_a_live_lease(live_app, clock_off):
    with live_app.app_context():
        # Given a lease held by a scheduler whose clock is right
        assert lease.acquire("a", 30)
        # When another, whose clock runs five minutes ahead, tries to take it
        clock_off(MINUTES)
        # Then it does not get it, sees who holds it, and the holder renews it
        assert not lease.acquire("b", 30)
        assert status.leader()["holder"] == "a"
        assert lease.acquire("a", 30)


@pytest.mark.postgres
def test_a_dead_schedulers_lease_ends_on_time_whatever_the_clocks(live_app, clock_off):
    # Given a scheduler whose clock runs five minutes ahead, which takes the lease
    # for a second and dies
    clock_off(MINUTES)
    with live_app.app_context():
        assert lease.acquire("a", 1)
        held = lease.current()
        assert held.expires_at <= database_now() + timedelta(seconds=1)
    # When that second has passed by the database's clock
    _expire(live_app)
    # Then a scheduler whose clock runs five minutes behind sees no leader, and takes it
    clock_off(-MINUTES)
    with live_app.app_context():
        assert status.leader() is None
        assert lease.acquire("b", 30)
        assert status.leader()["holder"] == "b"
