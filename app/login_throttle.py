"""Slows down password guessing: after FREE_FAILURES failed sign-ins for an
email, each further try must wait twice as long as the one before (up to
MAX_DELAY), whatever the password. Kept in the database so that every web
process sees the same count.

Every try is first *claimed*: counted as a failure in one committed,
conditional UPDATE (compare-and-set on the row it read) before any password is
hashed. Of any number of simultaneous tries as a wait ends, exactly one wins
the write; the others see the new count and wait. A success then deletes the
row. No transaction stays open while the password is hashed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from app.models import LoginThrottle

FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten (and their rows pruned by cleanup).
WINDOW = timedelta(hours=1)
# A lost compare-and-set is retried while tries are free; past them it means "wait".
CLAIM_TRIES = 20
PRUNE_BATCH = 1000


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _delay(failures: int) -> timedelta:
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(FIRST_DELAY * 2 ** (failures - FREE_FAILURES), MAX_DELAY)


def claim(email: str) -> None:
    """Count one try for ``email`` as a failure, or raise TooManyFailures while
    it must wait. Commits before returning."""
    for _ in range(CLAIM_TRIES):
        now = utcnow()
        row = db.session.execute(
            select(LoginThrottle.failures, LoginThrottle.last_failure_at).where(
                LoginThrottle.email == email
            )
        ).first()
        if row is None:
            if _insert_first(email, now):
                return
            continue
        wait = row.last_failure_at + _delay(row.failures) - now
        if wait > timedelta(0):
            db.session.rollback()
            raise TooManyFailures(max(1, int(wait.total_seconds() + 0.999)))
        failures = 1 if now - row.last_failure_at > WINDOW else row.failures + 1
        claimed = db.session.execute(
            update(LoginThrottle)
            .where(
                LoginThrottle.email == email,
                LoginThrottle.failures == row.failures,
                LoginThrottle.last_failure_at == row.last_failure_at,
            )
            .values(failures=failures, last_failure_at=now)
        ).rowcount
        db.session.commit()
        if claimed:
            return
    raise TooManyFailures(1)


def _insert_first(email: str, now) -> bool:
    db.session.add(LoginThrottle(email=email, failures=1, last_failure_at=now))
    try:
        db.session.commit()
        return True
    except IntegrityError:  # a simultaneous first try inserted it: claim against that row
        db.session.rollback()
        return False


def record_success(email: str) -> None:
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.email == email))
    db.session.commit()


def prune() -> int:
    """Delete rows whose failures are forgotten anyway, in small batches."""
    cutoff, pruned = utcnow() - WINDOW, 0
    while True:
        emails = db.session.scalars(
            select(LoginThrottle.email)
            .where(LoginThrottle.last_failure_at < cutoff)
            .limit(PRUNE_BATCH)
        ).all()
        if not emails:
            db.session.rollback()
            return pruned
        db.session.execute(
            delete(LoginThrottle).where(
                LoginThrottle.email.in_(emails), LoginThrottle.last_failure_at < cutoff
            )
        )
        db.session.commit()
        pruned += len(emails)
