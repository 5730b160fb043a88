"""The admin's search, as one condition each for jobs and for emails: the admin
list, the API's ``q`` and a bulk action's ``q`` find the same jobs, and the
failed emails page looks in the same texts.

People remember an email by whom it went to and what it was about, not by its
id, and an email job's arguments are only that id: so a job is also found by
its email's recipient and subject.

Each condition is ``id IN (a UNION of one select per table)``, not an OR
across tables: each select is answered by its table's trigram index, and a
distinct UNION tells PostgreSQL how many ids come back, so it joins them by
key (a rare address: a few milliseconds at a million jobs). An OR with a
subquery in it can use neither index and reads every row (seconds); an EXISTS
under the OR walks the newest rows and probes each, fast only when most rows
match. A word in a fifth of the emails still collects every match first: over
a second at a million jobs (bench/admin.py)."""

from __future__ import annotations

from sqlalchemy import ColumnClause, ColumnElement, literal_column, or_, select, union

from app.models import Email, Job

# What a search looks in, as one expression; migration 0005 indexes exactly this
# text on PostgreSQL, so keep the two the same.
SEARCH_TEXT: ColumnClause[str] = literal_column(
    "lower(coalesce(jobs.error_type, '') || ' ' || coalesce(jobs.error_message, '')"
    " || ' ' || CAST(jobs.args AS TEXT))"
)

# What a search looks in of an email: its recipient and its subject. Migration
# 0013 indexes exactly this text on PostgreSQL, so keep the two the same.
EMAIL_SEARCH_TEXT: ColumnClause[str] = literal_column(
    "lower(emails.\"to\" || ' ' || emails.subject)"
)


def search(q: str) -> ColumnElement[bool]:
    """The job whose id is ``q``, any job with ``q`` (ignoring case) in its
    error or in its arguments, and any email job whose email has ``q`` in its
    recipient or subject. LIKE's wildcards in ``q`` match themselves. On
    PostgreSQL the trigram indexes on SEARCH_TEXT and EMAIL_SEARCH_TEXT
    (migrations 0005 and 0013) answer it without scanning either table."""
    needle = q.lower()
    # correlate(None): the inner ``jobs`` is a table of its own, not the outer query's row.
    by_job = select(Job.id).where(or_(Job.id == q, SEARCH_TEXT.contains(needle, autoescape=True)))
    by_email = select(Email.job_id).where(
        Email.job_id.is_not(None), EMAIL_SEARCH_TEXT.contains(needle, autoescape=True)
    )
    return Job.id.in_(union(by_job.correlate(None), by_email.correlate(None)))


def search_emails(q: str) -> ColumnElement[bool]:
    """The email whose id is ``q``, and any email with ``q`` (ignoring case) in
    its recipient or subject or in its job's error (SEARCH_TEXT, which also
    holds the email's id: an email job's argument)."""
    needle = q.lower()
    by_email = select(Email.id).where(
        or_(Email.id == q, EMAIL_SEARCH_TEXT.contains(needle, autoescape=True))
    )
    by_job = (
        select(Email.id)
        .join(Job, Email.job_id == Job.id)
        .where(SEARCH_TEXT.contains(needle, autoescape=True))
    )
    return Email.id.in_(union(by_email.correlate(None), by_job.correlate(None)))
