"""The admin's job search, as one condition: the admin list and a bulk action's
``q`` find the same jobs."""

from __future__ import annotations

from sqlalchemy import ColumnClause, literal_column, or_

from app.models import Job

# What a search looks in, as one expression; migration 0005 indexes exactly this
# text on PostgreSQL, so keep the two the same.
SEARCH_TEXT: ColumnClause[str] = literal_column(
    "lower(coalesce(jobs.error_type, '') || ' ' || coalesce(jobs.error_message, '')"
    " || ' ' || CAST(jobs.args AS TEXT))"
)


def search(q: str):
    """The job whose id is ``q``, or any job with ``q`` (ignoring case) in its
    error or in its arguments. On PostgreSQL a trigram index on SEARCH_TEXT
    (migration 0005) answers this without scanning the table."""
    return or_(Job.id == q, SEARCH_TEXT.contains(q.lower(), autoescape=True))
