"""/admin: the overview. For the last hour and the last 24 hours: jobs that
succeeded, failed for good and were retried, per minute and per actor; each
queue's depth and its oldest waiting job; the time from enqueue to start.

Every number comes from the job rows through bounded queries: the window's rows
are grouped by minute in the database (an index on ``finished_at`` that holds
what they read, and one on the attempts' ``finished_at``), and the wait times
from a bounded sample of the newest finished jobs. The charts are drawn here, as SVG
(``app/admin/charts.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import render_template
from sqlalchemy import and_, bindparam, case, func, not_, select

from app.admin import charts, live
from app.admin.blueprint import admin
from app.db import UTCDateTime, db, dialect, utcnow
from app.models import Job, JobAttempt
from app.states import JobStatus
from app.web.session import admin_required

DAY_MINUTES = 24 * 60
# The 24-hour charts draw a bar per ten minutes (as a rate per minute).
DAY_BUCKET = 10
# Starts whose wait is measured: the newest this many in the window.
WAIT_SAMPLE = 5_000
WAITING = (JobStatus.QUEUED, JobStatus.RETRYING)


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    queued: int
    retrying: int
    oldest_queued: datetime | None


def _minute(column, since: datetime):
    """The whole minutes from ``since`` to ``column``, computed by the database."""
    start = bindparam("since", since, type_=UTCDateTime)
    if dialect() == "sqlite":
        return func.cast((func.julianday(column) - func.julianday(start)) * 1440, db.Integer)
    return func.floor(func.extract("epoch", column - start) / 60)


def outcomes_per_minute(since: datetime) -> dict[str, dict[str, dict[int, int]]]:
    """{metric: {actor: {minute: count}}} since ``since``, for the metrics
    succeeded, failed (for good) and retried (a failed attempt that was not its
    job's last)."""
    metrics: dict[str, dict[str, dict[int, int]]] = {
        "succeeded": defaultdict(dict),
        "failed": defaultdict(dict),
        "retried": defaultdict(dict),
    }
    minute = _minute(Job.finished_at, since).label("minute")
    finished = db.session.execute(
        select(Job.actor, Job.status, minute, func.count())
        .where(
            Job.finished_at >= since,
            Job.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED)),
        )
        .group_by(Job.actor, Job.status, minute)
    )
    for actor, status, at, n in finished:
        metrics[status][actor][int(at)] = n
    attempt_minute = _minute(JobAttempt.finished_at, since).label("minute")
    last_of_failed = and_(Job.status == JobStatus.FAILED, JobAttempt.attempt == Job.attempts)
    retried = db.session.execute(
        select(Job.actor, attempt_minute, func.count())
        .join(Job, Job.id == JobAttempt.job_id)
        .where(
            JobAttempt.finished_at >= since,
            JobAttempt.outcome == "failed",
            not_(last_of_failed),
        )
        .group_by(Job.actor, attempt_minute)
    )
    for actor, at, n in retried:
        metrics["retried"][actor][int(at)] = n
    return metrics


def queue_depths() -> list[QueueDepth]:
    """Each queue with waiting jobs: how many are queued and retrying, and when
    the oldest queued one was created. One GROUP BY over the waiting jobs' index."""
    rows = db.session.execute(
        select(
            Job.queue,
            func.count().filter(Job.status == JobStatus.QUEUED),
            func.count().filter(Job.status == JobStatus.RETRYING),
            func.min(case((Job.status == JobStatus.QUEUED, Job.created_at))),
        )
        .where(Job.status.in_(WAITING))
        .group_by(Job.queue)
        .order_by(Job.queue)
    ).all()
    oldest_type = UTCDateTime()
    return [
        QueueDepth(
            queue=queue,
            queued=queued,
            retrying=retrying,
            # min() over a CASE loses the column's type on SQLite: read it as the column would.
            oldest_queued=oldest_type.process_result_value(_as_datetime(oldest), db.engine.dialect)
            if oldest is not None
            else None,
        )
        for queue, queued, retrying, oldest in rows
    ]


def _as_datetime(value) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def waits(since: datetime) -> list[tuple[datetime, float]]:
    """(started at, seconds from enqueue to start) of the newest jobs finished
    since ``since`` in their first attempt: a retry's wait is its backoff, not
    the queue's. Read from the finished jobs' index alone."""
    rows = db.session.execute(
        select(Job.started_at, Job.created_at)
        .where(Job.finished_at >= since, Job.attempts == 1, Job.started_at.is_not(None))
        .order_by(Job.finished_at.desc())
        .limit(WAIT_SAMPLE)
    )
    return [(started, (started - created).total_seconds()) for started, created in rows]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def _series(per_actor: dict[str, dict[int, int]], *, start: int, buckets: int, size: int):
    """{actor: [rate per minute in each bucket]} for ``buckets`` buckets of
    ``size`` minutes from minute ``start``."""
    series = {}
    for actor, counts in sorted(per_actor.items()):
        values = [0.0] * buckets
        for minute, n in counts.items():
            bucket = (minute - start) // size
            if 0 <= bucket < buckets:
                values[bucket] += n / size
        if any(values):
            series[actor] = values
    return series


@admin.get("")
@admin_required
def overview():
    now = utcnow().replace(second=0, microsecond=0) + timedelta(minutes=1)
    depths = queue_depths()
    # The charts move once a minute; the queues at any time.
    version = live.version_of(now, depths)
    return live.conditional(version, lambda version: _render(version, now, depths))


def _render(version: str, now: datetime, depths: list[QueueDepth]) -> str:
    since = now - timedelta(minutes=DAY_MINUTES)
    metrics = outcomes_per_minute(since)
    sample = waits(since)
    hour_ago = now - timedelta(hours=1)
    windows = {
        "hour": {"start": DAY_MINUTES - 60, "buckets": 60, "size": 1},
        "day": {"start": 0, "buckets": DAY_MINUTES // DAY_BUCKET, "size": DAY_BUCKET},
    }
    actors = sorted({actor for per_actor in metrics.values() for actor in per_actor})
    colors = charts.colors(actors)
    drawn = {
        window: {
            metric: charts.stacked_bars(
                _series(per_actor, **shape), colors=colors, minutes_per_bar=shape["size"]
            )
            for metric, per_actor in metrics.items()
        }
        for window, shape in windows.items()
    }
    totals = {
        window: {
            metric: sum(
                n
                for counts in per_actor.values()
                for minute, n in counts.items()
                if minute >= shape["start"]
            )
            for metric, per_actor in metrics.items()
        }
        for window, shape in windows.items()
    }
    wait = {
        "hour": [seconds for started, seconds in sample if started >= hour_ago],
        "day": [seconds for _, seconds in sample],
    }
    return render_template(
        "admin/overview.html",
        version=version,
        now=now,
        current=utcnow(),
        charts=drawn,
        totals=totals,
        colors=colors,
        depths=depths,
        waits={
            window: {
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
                "n": len(values),
            }
            for window, values in wait.items()
        },
        sampled=len(sample) == WAIT_SAMPLE,
    )
