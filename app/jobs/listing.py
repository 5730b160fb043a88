"""Newest-first pages with a keyset cursor, shared by the API, the admin pages
and the CLI, for any model with ``created_at`` and ``id`` (jobs, emails).

The cursor is the last row's (created_at, id): the next page starts strictly
after it, so a deep page costs as much as the first, with no OFFSET scan."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_

from app import text
from app.db import db
from app.models import Job


class BadCursor(ValueError):
    """A cursor that no page of ours handed out: not base64 of "time|id", a
    time without its offset, or an id no row could have."""

    def __init__(self) -> None:
        super().__init__("is not a valid cursor")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None  # None on the last page


def encode_cursor(row) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The keyset a cursor names; BadCursor unless a row could hold it. The id
    goes into SQL, where a NUL would be a driver error (on PostgreSQL) rather
    than no match."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, _, row_id = raw.partition("|")
        timestamp = datetime.fromisoformat(created_at)
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise BadCursor() from None
    if timestamp.tzinfo is None or not row_id or not text.single_line(row_id):
        raise BadCursor()
    return timestamp, row_id


def newest_first(
    query: Select | None = None, *, cursor: str | None = None, limit: int, model=Job
) -> Select:
    query = select(model) if query is None else query
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        # A row comparison, which PostgreSQL turns into an index range scan.
        query = query.where(tuple_(model.created_at, model.id) < tuple_(created_at, row_id))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)


def page(query: Select | None = None, *, cursor: str | None, limit: int, model=Job) -> Page:
    """Up to ``limit`` rows of ``query`` after ``cursor``, and the cursor of the
    page after them: one row more than the page is fetched to know whether
    there is one. BadCursor for a cursor ``decode_cursor`` refuses."""
    rows = db.session.scalars(
        newest_first(query, cursor=cursor, limit=limit + 1, model=model)
    ).all()
    items = list(rows[:limit])
    return Page(items=items, next_cursor=encode_cursor(items[-1]) if len(rows) > limit else None)
