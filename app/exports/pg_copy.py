"""CSV exports straight from PostgreSQL's COPY.

Formatting rows in Python costs several times what the database takes to send
them; COPY writes RFC 4180 CSV itself. It runs in keyset batches so that
progress can still be reported, each batch one short REPEATABLE READ
transaction that counts its rows and copies exactly those rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from app.db import db
from app.exports.writers import FORMULA_STARTS

if TYPE_CHECKING:
    import psycopg

BATCH_ROWS = 50_000
HEADER = b"id,body,created_at\n"
BOUNDS = """
    SELECT count(*), max(id) FROM (
        SELECT id FROM posts WHERE user_id = %s AND id > %s ORDER BY id LIMIT %s
    ) AS batch
"""
# Same text as the Python writers produce: a body a spreadsheet would take for a
# formula prefixed with a single quote (writers.FORMULA_STARTS; chr() of integers,
# so the SQL needs no escapes), times in ISO 8601 in UTC with microseconds, and
# UTF-8 whatever the session's client_encoding (COPY writes in that by default).
FORMULA_FIRST = ", ".join(f"chr({ord(char)})" for char in FORMULA_STARTS)
ROWS = """
    COPY (
        SELECT id,
               CASE WHEN left(body, 1) IN ({formula_first}) THEN chr(39) || body ELSE body END,
               to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')
        FROM posts WHERE user_id = {user_id} AND id > {after} AND id <= {last} ORDER BY id
    ) TO STDOUT (FORMAT csv, ENCODING 'UTF8')
"""


def write_posts_csv(path: str, user_id: int, on_rows: Callable[[int], None]) -> None:
    """Write the user's posts to ``path``; ``on_rows(n)`` after each batch of n rows."""
    after = 0
    with db.engine.connect() as connection, open(path, "wb") as out:
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
        out.write(HEADER)
        while True:
            with connection.begin():
                # psycopg's connection itself (this runs on PostgreSQL only), for COPY.
                driver = cast("psycopg.Connection", connection.connection.dbapi_connection)
                cursor = driver.cursor()
                cursor.execute(BOUNDS, (user_id, after, BATCH_ROWS))
                # An aggregate without GROUP BY: always exactly one row.
                [(count, last)] = cursor.fetchall()
                if not count:
                    return
                # Integers only, from this code and the database: safe to format in.
                query = ROWS.format(
                    formula_first=FORMULA_FIRST,
                    user_id=int(user_id),
                    after=int(after),
                    last=int(last),
                )
                with cursor.copy(query) as copy:
                    for chunk in copy:
                        out.write(chunk)
            on_rows(count)
            after = last
