"""The scheduler lease: one row that names the one scheduler allowed to enqueue
periodic jobs, until ``expires_at``. The holder renews it well within its
expiry; when the holder dies, another scheduler takes it over once it expires.

A lease of ``app/leases.py``: taking or renewing it is one conditional UPDATE,
so two schedulers cannot both succeed at the same moment, and it is timed by
the database's clock, so a scheduler whose clock is off neither takes it from a
live holder nor holds it past its expiry."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Row
from sqlalchemy.exc import IntegrityError

from app.db import db
from app.leases import LeaseTable
from app.models import SchedulerLease

NAME = "scheduler"
LEASES = LeaseTable(SchedulerLease.name, holder=SchedulerLease.holder)


def acquire(holder: str, ttl_s: float) -> bool:
    """Take or renew the lease for ``ttl_s`` seconds; True when ``holder`` has it."""
    try:
        held = LEASES.take(db.session, NAME, timedelta(seconds=ttl_s), holder=holder)
        db.session.commit()
    except IntegrityError:  # another scheduler created the row first
        db.session.rollback()
        return False
    return held


def release(holder: str) -> None:
    """Give the lease up at once (on SIGTERM), so another scheduler takes over now."""
    LEASES.release(db.session, NAME, holder=holder)
    db.session.commit()


def current() -> Row | None:
    """The ``holder`` and ``expires_at`` of the lease while it is held."""
    return LEASES.live(db.session, NAME)
