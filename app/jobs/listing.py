"""Newest-first listing with a keyset cursor, shared by the API, the admin pages
and the CLI, for any model with ``created_at`` and ``id`` (jobs, emails).

The cursor is the last row's (created_at, id): the next page starts strictly
after it, so a deep page costs as much as the first, with no OFFSET scan."""

from __future__ import annotations

import base64
from datetime import datetime

from sqlalchemy import Select, select, tuple_

from app.models import Job


class BadCursor(ValueError):
    pass


def encode_cursor(row) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, job_id = raw.split("|", 1)
        timestamp = datetime.fromisoformat(created_at)
    except (ValueError, UnicodeDecodeError):
        raise BadCursor(cursor) from None
    if timestamp.tzinfo is None:
        raise BadCursor(cursor)
    return timestamp, job_id


def newest_first(
    query: Select | None = None, *, cursor: str | None = None, limit: int, model=Job
) -> Select:
    query = select(model) if query is None else query
    if cursor:
        created_at, row_id = decode_cursor(cursor)
        # A row comparison, which PostgreSQL turns into an index range scan.
        query = query.where(tuple_(model.created_at, model.id) < tuple_(created_at, row_id))
    return query.order_by(model.created_at.desc(), model.id.desc()).limit(limit)
