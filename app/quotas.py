"""What one user may queue and keep: USER_EMAILS_PER_HOUR, USER_EXPORTS_PER_DAY,
USER_EXPORT_BYTES (each 0 for no limit) and EMAIL_MAX_BODY_BYTES.

The windows slide ("any hour"), and a refusal says when the oldest counted item
leaves its window (``Retry-After``). So the quota is counted over the rows
themselves rather than kept in a counter row: a counter per user and window
costs a conditional UPDATE too, but only gives fixed windows (twice the limit
across a boundary) and cannot tell when room frees up. Counting costs no more:
"the Nth newest email of the last hour" is ``LIMIT 1 OFFSET N-1`` on the index
``(user_id, user_queued, created_at)``, at most N index entries and no table
row, and nothing extra is written or has to be pruned.

Concurrent requests of one user cannot overshoot, because the check and the
insert are one transaction and such transactions run one at a time per user:
on PostgreSQL the check first locks the user's row (``FOR NO KEY UPDATE``, which
leaves the foreign-key checks of other inserts alone) until the commit, and a
second request waits there, then counts under a fresh READ COMMITTED snapshot
that holds the first one's row. On SQLite every writing transaction is BEGIN
IMMEDIATE (app/db.py): writers are one at a time already.

Only what the user asked for counts: the email that delivers an export is the
app's (``user_queued`` false). Export bytes count files of succeeded exports
whose link has not expired; a file's size is known only when it is written, so
a user keeps at most the limit plus the export in progress (one per kind).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from app.db import db, utcnow
from app.models import Email, Export, User
from app.states import ExportStatus

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class QuotaExceeded(Exception):
    """Over a quota: try again in ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class EmailTooLarge(Exception):
    """``body`` plus ``html`` is over EMAIL_MAX_BODY_BYTES."""


def check_email_size(body: str, html: str | None) -> None:
    limit = current_app.config["EMAIL_MAX_BODY_BYTES"]
    size = len(body.encode()) + len((html or "").encode())
    if limit and size > limit:
        raise EmailTooLarge(f"body plus html is {size} bytes; at most {limit} are allowed")


def check_emails(user_id: int, count: int = 1) -> None:
    """Room for ``count`` more emails of the user's this hour, or QuotaExceeded.
    Call it in the transaction that then adds them (``user_queued``) and commits."""
    limit = current_app.config["USER_EMAILS_PER_HOUR"]
    if not limit:
        return
    _lock(user_id)
    now = utcnow()
    blocking = (
        _nth_newest(
            Email.created_at,
            (Email.user_id == user_id, Email.user_queued.is_(True)),
            since=now - HOUR,
            n=limit - count + 1,
        )
        if count <= limit
        else now  # more than an hour's worth at once: never
    )
    if blocking is not None:
        _refuse(f"at most {limit} emails an hour (USER_EMAILS_PER_HOUR)", blocking + HOUR - now)


def check_export(user_id: int) -> None:
    """Room for one more export of the user's, or QuotaExceeded. Call it in the
    transaction that then adds the export and commits."""
    config = current_app.config
    per_day, max_bytes = config["USER_EXPORTS_PER_DAY"], config["USER_EXPORT_BYTES"]
    if not (per_day or max_bytes):
        return
    _lock(user_id)
    now, refusals = utcnow(), []
    if per_day:
        blocking = _nth_newest(
            Export.created_at, (Export.user_id == user_id,), since=now - DAY, n=per_day
        )
        if blocking is not None:
            refusals.append(
                (f"at most {per_day} exports a day (USER_EXPORTS_PER_DAY)", blocking + DAY - now)
            )
    if max_bytes:
        wait = _bytes_wait(user_id, max_bytes, now)
        if wait is not None:
            refusals.append(
                (f"your export files total {max_bytes} bytes or more (USER_EXPORT_BYTES)", wait)
            )
    if refusals:
        message, wait = max(refusals, key=lambda refusal: refusal[1])
        _refuse(message, wait)


def _lock(user_id: int) -> None:
    """The user's row, locked until the commit (PostgreSQL; a no-op on SQLite)."""
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))


def _nth_newest(created_at, where: tuple, *, since: datetime, n: int) -> datetime | None:
    """The creation time of the ``n``-th newest row since ``since``: while it
    exists, ``n - 1`` newer ones remain in the window after it leaves."""
    return db.session.scalar(
        select(created_at)
        .where(*where, created_at > since)
        .order_by(created_at.desc())
        .offset(n - 1)
        .limit(1)
    )


def _bytes_wait(user_id: int, max_bytes: int, now: datetime) -> timedelta | None:
    """None while the user's kept export files total under ``max_bytes``; else
    how long until enough of them expire."""
    ttl = timedelta(seconds=current_app.config["EXPORT_LINK_TTL_S"])
    kept = db.session.execute(
        select(Export.bytes, Export.finished_at)
        .where(
            Export.user_id == user_id,
            Export.status == ExportStatus.SUCCEEDED,
            Export.finished_at >= now - ttl,
        )
        .order_by(Export.finished_at)
    ).all()
    total = sum(size or 0 for size, _ in kept)
    if total < max_bytes:
        return None
    for size, finished_at in kept:  # oldest first, the order in which they expire
        total -= size or 0
        if total < max_bytes:
            assert finished_at is not None  # the query compares it with now - ttl
            return finished_at + ttl - now
    raise AssertionError("unreachable: no files total 0 bytes, under any limit")


def _refuse(message: str, wait: timedelta):
    db.session.rollback()  # and with it the lock
    raise QuotaExceeded(message, max(1, math.ceil(wait.total_seconds())))
