"""The audit log: one row per admin action (retry, cancel, resend, every bulk
action, queue changes): when, which admin, what, on what (job ids or a filter),
and how it ended. Kept for AUDIT_RETENTION_DAYS by the cleanup."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import g, has_request_context
from sqlalchemy import select

from app.db import db
from app.jobs.listing import BadCursor, Page
from app.models import AuditEntry, User

# Who acted when no one is signed in: the ``flask`` command.
COMMAND_LINE = "command line"


def record(action: str, target: dict[str, Any], detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add an entry for the current admin (``g.user``; the command line outside
    a request) to the session; the caller commits it with what it did, or
    alone after it."""
    user_id, email = _actor()
    entry = AuditEntry(
        user_id=user_id, user_email=email, action=action, target=target, detail=detail or {}
    )
    db.session.add(entry)
    return entry


class Trail:
    """An admin's retry, cancel or resend of chosen jobs, recorded in the same
    transaction as the change (``control``'s ``also=``): the entry commits with
    what it did, or neither does. ``size`` is how many jobs were asked for, all
    in one batch (a page's selection, or one job)."""

    def __init__(self, action: str, target: dict[str, Any], *, size: int):
        self.action, self.target, self.size = action, target, size

    def __call__(self, changed: list[str]) -> None:
        detail = {"done": len(changed), "skipped": self.size - len(changed)}
        record(self.action, self.target, detail)


def _actor() -> tuple[int | None, str | None]:
    user = getattr(g, "user", None) if has_request_context() else None
    if user is None:
        return None, COMMAND_LINE
    email = getattr(user, "email", None)
    if email is None:  # the API's token user carries only its id
        email = db.session.scalar(select(User.email).where(User.id == user.id))
    return user.id, email


def newest(*, limit: int, cursor: str | None = None) -> Page:
    """A page of entries, newest first; BadCursor for a cursor not handed out here."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit + 1)
    if cursor:
        query = query.where(AuditEntry.id < _decode(cursor))
    rows = db.session.scalars(query).all()
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page(items=items, next_cursor=_encode(items[-1].id) if more else None)


def as_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at.isoformat(),
        "user": entry.user_email,
        "action": entry.action,
        "target": entry.target,
        "detail": entry.detail,
    }


def _encode(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"audit|{entry_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadCursor() from None
    kind, _, number = raw.partition("|")
    if kind != "audit" or not number.isdigit() or len(number) > 19:
        raise BadCursor()
    return int(number)
