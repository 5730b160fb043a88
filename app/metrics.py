"""Prometheus metrics, read from the database at scrape time so that every web
process reports the same numbers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from app.db import db, utcnow
from app.models import Job, ScheduleState


class JobsCollector:
    def collect(self):
        jobs = GaugeMetricFamily("jobs", "Jobs by status and actor", labels=["status", "actor"])
        rows = db.session.execute(
            select(Job.status, Job.actor, func.count()).group_by(Job.status, Job.actor)
        ).all()
        for status, actor, count in rows:
            jobs.add_metric([status, actor], count)
        yield jobs
        unpublished = db.session.scalar(
            select(func.count()).where(Job.status == "queued", Job.published_at.is_(None))
        )
        yield GaugeMetricFamily(
            "jobs_unpublished", "Jobs committed but not yet handed to the broker", unpublished
        )
        ages = GaugeMetricFamily(
            "schedule_last_run_age_seconds", "Seconds since each periodic job ran", labels=["name"]
        )
        now = utcnow()
        for name, last_run in db.session.execute(
            select(ScheduleState.name, ScheduleState.last_run_at)
        ):
            if last_run is not None:
                ages.add_metric([name], (now - last_run).total_seconds())
        yield ages
        db.session.rollback()


def render() -> bytes:
    registry = CollectorRegistry()
    registry.register(JobsCollector())
    return generate_latest(registry)
