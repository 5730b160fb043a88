"""Prometheus metrics, read from the database at scrape time so that every web
process reports the same numbers.

A scrape must cost the same over a million jobs as over ten, so no query here
scans the jobs table: actors are found by a loose index scan (one index seek
per actor), every count stops at COUNT_CAP (a ``LIMIT`` inside the count, an
index range of at most that many entries), and the oldest queued job is one
seek. A count at the cap means "at least this many"; ``jobs_count_cap`` says
where that is."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Select, func, literal, select, union_all

from app import emails
from app.db import db, utcnow
from app.models import Email, Job, ScheduleState
from app.states import JobStatus

COUNT_CAP = 10_000
# Actors are a handful; this bounds the scrape even if jobs of many stray actors exist.
MAX_ACTORS = 50


def _capped(query: Select) -> Select:
    return select(func.count()).select_from(query.limit(COUNT_CAP).subquery())


def actors() -> list[str]:
    """Distinct actors, one index seek each on ix_jobs_actor_status_created."""
    found: list[str] = []
    while len(found) < MAX_ACTORS:
        query = select(func.min(Job.actor))
        if found:
            query = query.where(Job.actor > found[-1])
        actor = db.session.scalar(query)
        if actor is None:
            break
        found.append(actor)
    return found


def job_counts() -> dict[tuple[str, str], int]:
    """{(actor, status): count, capped}, in one round trip."""
    pairs = [(actor, status) for actor in actors() for status in JobStatus]
    if not pairs:
        return {}
    parts = [
        select(
            literal(index).label("pair"),
            _capped(select(Job.id).where(Job.actor == actor, Job.status == status))
            .scalar_subquery()
            .label("n"),
        )
        for index, (actor, status) in enumerate(pairs)
    ]
    rows = db.session.execute(union_all(*parts)).all()
    return {pairs[index]: n for index, n in rows}


def unpublished() -> int:
    """The outbox backlog: queued jobs the broker has not confirmed (ix_jobs_unpublished)."""
    query = select(Job.id).where(Job.published_at.is_(None), Job.status == JobStatus.QUEUED)
    return db.session.scalar(_capped(query))


def oldest_queued_age_s() -> float:
    oldest = db.session.scalar(
        select(func.min(Job.created_at)).where(Job.status == JobStatus.QUEUED)
    )
    return (utcnow() - oldest).total_seconds() if oldest else 0.0


def failed_emails() -> int:
    """The failed emails (``app.emails.failed``), capped, counted in two parts
    that are each an index range: the emails of send_email jobs that gave up
    (ix_jobs_actor_status_created: the actor and the states named), and the
    emails without a job (the emails index on job_id)."""
    of_jobs_that_gave_up = (
        select(Email.id)
        .join(Job, Job.id == Email.job_id)
        .where(Job.actor == emails.SEND_EMAIL.actor, Job.status.in_(emails.GAVE_UP))
        .where(emails.failed())
    )
    without_job = (
        select(Email.id)
        .outerjoin(Job, Job.id == Email.job_id)
        .where(Email.job_id.is_(None))
        .where(emails.failed())
    )
    total = db.session.scalar(_capped(of_jobs_that_gave_up)) + db.session.scalar(
        _capped(without_job)
    )
    return min(total, COUNT_CAP)


class JobsCollector:
    def collect(self):
        try:
            yield from self._collect()
        finally:
            db.session.rollback()

    def _collect(self):
        jobs = GaugeMetricFamily("jobs", "Jobs by status and actor", labels=["status", "actor"])
        for (actor, status), count in job_counts().items():
            jobs.add_metric([status, actor], count)
        yield jobs
        yield GaugeMetricFamily(
            "jobs_count_cap", "Counts stop here: a count at the cap means at least", COUNT_CAP
        )
        yield GaugeMetricFamily(
            "jobs_unpublished", "Jobs committed but not yet handed to the broker", unpublished()
        )
        yield GaugeMetricFamily(
            "jobs_oldest_queued_age_seconds",
            "Age of the oldest queued job (0 when none is queued)",
            oldest_queued_age_s(),
        )
        yield GaugeMetricFamily(
            "emails_failed", "Emails that failed and stay unsent", failed_emails()
        )
        ages = GaugeMetricFamily(
            "schedule_last_run_age_seconds", "Seconds since each periodic job ran", labels=["name"]
        )
        intervals = GaugeMetricFamily(
            "schedule_interval_seconds", "Each periodic job's interval", labels=["name"]
        )
        now = utcnow()
        for name, last_run, interval_s in db.session.execute(
            select(ScheduleState.name, ScheduleState.last_run_at, ScheduleState.interval_s)
        ):
            intervals.add_metric([name], interval_s)
            if last_run is not None:
                ages.add_metric([name], (now - last_run).total_seconds())
        yield ages
        yield intervals


def render() -> bytes:
    registry = CollectorRegistry()
    registry.register(JobsCollector())
    return generate_latest(registry)
