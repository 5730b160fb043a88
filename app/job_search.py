"""The admin's search, as one condition: the admin list, the API's ``q`` and a
bulk action's ``q`` find the same jobs, and the failed emails page finds an
email through its job.

People remember an email by whom it went to and what it was about, not by its
id, and an email job's arguments are only that id: so a job carries its
email's recipient and subject (``jobs.about``, written with it), and one text
per job row holds all a search looks in. One trigram index on that text lets
PostgreSQL choose per search: the index for a rare address, the newest rows
filtered in order for a word most rows hold. A condition across two tables
(an OR, an IN over a UNION) plans well for one of the two and takes seconds
for the other at a million jobs."""

from __future__ import annotations

from sqlalchemy import ColumnClause, ColumnElement, literal_column, or_

from app.models import Job

# What a search looks in, as one expression; migration 0013 indexes exactly this
# text on PostgreSQL, so keep the two the same.
SEARCH_TEXT: ColumnClause[str] = literal_column(
    "lower(coalesce(jobs.error_type, '') || ' ' || coalesce(jobs.error_message, '')"
    " || ' ' || CAST(jobs.args AS TEXT) || ' ' || coalesce(jobs.about, ''))"
)


def search(q: str) -> ColumnElement[bool]:
    """The job whose id is ``q``, or any job with ``q`` (ignoring case) in its
    error, its arguments, or its email's recipient and subject. LIKE's
    wildcards in ``q`` match themselves."""
    return or_(Job.id == q, SEARCH_TEXT.contains(q.lower(), autoescape=True))
