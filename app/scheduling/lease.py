"""The scheduler lease: a row that names the one scheduler allowed to enqueue
periodic jobs, until ``expires_at``. The holder renews it well within its
expiry; when the holder dies, another scheduler takes it over once it expires.

Taking or renewing is one conditional UPDATE, so two schedulers cannot both
succeed at the same moment. Times come from each scheduler's clock; keep them in
sync (NTP), as a lease of tens of seconds tolerates the usual skew."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from app.models import SchedulerLease

NAME = "scheduler"


def acquire(holder: str, ttl_s: float) -> bool:
    """Take or renew the lease for ``ttl_s`` seconds; True when ``holder`` has it."""
    now = utcnow()
    taken = db.session.execute(
        update(SchedulerLease)
        .where(
            SchedulerLease.name == NAME,
            or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now),
        )
        .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s))
    ).rowcount
    if not taken and db.session.get(SchedulerLease, NAME) is None:
        db.session.add(
            SchedulerLease(name=NAME, holder=holder, expires_at=now + timedelta(seconds=ttl_s))
        )
        taken = 1
    try:
        db.session.commit()
    except IntegrityError:  # another scheduler created the row first
        db.session.rollback()
        return False
    return bool(taken)


def release(holder: str) -> None:
    """Give the lease up at once (on SIGTERM), so another scheduler takes over now."""
    db.session.execute(
        update(SchedulerLease)
        .where(SchedulerLease.name == NAME, SchedulerLease.holder == holder)
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def current() -> SchedulerLease | None:
    return db.session.get(SchedulerLease, NAME)
