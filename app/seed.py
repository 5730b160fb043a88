"""Bulk demo posts for ``flask --app app seed-posts EMAIL N``: COPY on PostgreSQL
(a million rows in seconds), batched multi-row INSERTs elsewhere."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import insert

from app.db import db, utcnow
from app.models import Post

BATCH = 10_000
# Bodies that exercise every format's quoting: commas, quotes, newlines, tabs, non-ASCII.
SAMPLES = (
    "Just a plain post.",
    'She said "hello", then left.',
    "Line one\nline two\r\nline three",
    "tab\tseparated\tvalues",
    "Grüße aus Köln — 東京 — 🚀",
    "=SUM(A1:A2) is not a formula here",
)


def bodies(count: int) -> Iterator[str]:
    for number in range(1, count + 1):
        yield f"#{number} {SAMPLES[number % len(SAMPLES)]}"


def seed_posts(user_id: int, count: int) -> None:
    if db.engine.dialect.name == "postgresql":
        _copy(user_id, count)
    else:
        _insert(user_id, count)


def _copy(user_id: int, count: int) -> None:
    now = utcnow()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy("COPY posts (user_id, body, created_at) FROM STDIN") as copy:
            for body in bodies(count):
                copy.write_row((user_id, body, now))
        raw.commit()
    finally:
        raw.close()


def _insert(user_id: int, count: int) -> None:
    now = utcnow()
    rows: list[dict] = []
    for body in bodies(count):
        rows.append({"user_id": user_id, "body": body, "created_at": now})
        if len(rows) == BATCH:
            db.session.execute(insert(Post), rows)
            rows.clear()
    if rows:
        db.session.execute(insert(Post), rows)
    db.session.commit()
