"""Slows down password guessing: after FREE_FAILURES failed sign-ins for an
email, each further try must wait twice as long as the one before (up to
MAX_DELAY), whatever the password. Kept in the database so that every web
process sees the same count."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from app.db import db, utcnow
from app.models import LoginThrottle

FREE_FAILURES = 5
FIRST_DELAY = timedelta(seconds=2)
MAX_DELAY = timedelta(minutes=15)
# Failures older than this are forgotten.
WINDOW = timedelta(hours=1)


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def _delay(failures: int) -> timedelta:
    if failures < FREE_FAILURES:
        return timedelta(0)
    return min(FIRST_DELAY * 2 ** (failures - FREE_FAILURES), MAX_DELAY)


def check(email: str) -> None:
    """Raise TooManyFailures while this email must wait before another try."""
    row = db.session.get(LoginThrottle, email)
    if row is None:
        return
    wait = row.last_failure_at + _delay(row.failures) - utcnow()
    if wait > timedelta(0):
        raise TooManyFailures(max(1, int(wait.total_seconds() + 0.999)))


def record_failure(email: str) -> None:
    now = utcnow()
    row = db.session.get(LoginThrottle, email)
    if row is None:
        db.session.add(LoginThrottle(email=email, failures=1, last_failure_at=now))
    else:
        row.failures = 1 if now - row.last_failure_at > WINDOW else row.failures + 1
        row.last_failure_at = now
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent first failure for the same email
        db.session.rollback()
        record_failure(email)


def record_success(email: str) -> None:
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.email == email))
    db.session.commit()
