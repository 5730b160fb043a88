"""/admin: the overview. For the last hour and the last 24 hours: jobs that
succeeded, failed for good and were retried, per minute and per actor; each
queue's depth and its oldest waiting job; the time from enqueue to start.

Every number comes from the job rows through bounded queries: the window's rows
are grouped by minute in the database (an index on ``finished_at`` that holds
what they read, and one on the attempts' ``finished_at``), and the wait times
from a bounded sample of the newest finished jobs. The charts of a minute are the
same for every admin: each web process computes them once a minute; the queue
depths are read on every answer (or a 304 while they and the minute stand). The
charts are drawn here, as SVG (``app/admin/charts.py``)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, render_template
from sqlalchemy import and_, bindparam, case, func, not_, select

from app.admin import charts, live
from app.admin.blueprint import admin
from app.db import UTCDateTime, as_utc, db, dialect, utcnow
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


def _seconds(later, earlier):
    """The seconds from ``earlier`` to ``later`` (columns or parameters),
    computed by the database: rows come back as numbers, not timestamps."""
    if dialect() == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400
    return func.extract("epoch", later - earlier)


def _bucket(column, since: datetime, minutes: int):
    """Which bucket of ``minutes`` minutes from ``since`` ``column`` falls in,
    as an integer computed by the database."""
    seconds = _seconds(column, bindparam("since", since, type_=UTCDateTime))
    return func.cast(func.floor(seconds / (60 * minutes)), db.Integer)


def outcomes(since: datetime, minutes: int) -> dict[str, dict[str, dict[int, int]]]:
    """{metric: {actor: {bucket: count}}} in buckets of ``minutes`` minutes from
    ``since``, for the metrics succeeded, failed (for good) and retried (a
    failed attempt that was not its job's last). Grouped by the database: a
    row per actor, outcome and bucket comes back, never a row per job."""
    metrics: dict[str, dict[str, dict[int, int]]] = {
        "succeeded": defaultdict(dict),
        "failed": defaultdict(dict),
        "retried": defaultdict(dict),
    }
    bucket = _bucket(Job.finished_at, since, minutes).label("bucket")
    finished = db.session.execute(
        select(Job.actor, Job.status, bucket, func.count())
        .where(
            Job.finished_at >= since,
            Job.status.in_((JobStatus.SUCCEEDED, JobStatus.FAILED)),
        )
        .group_by(Job.actor, Job.status, bucket)
    )
    for actor, status, at, n in finished:
        metrics[status][actor][at] = n
    attempt_bucket = _bucket(JobAttempt.finished_at, since, minutes).label("bucket")
    last_of_failed = and_(Job.status == JobStatus.FAILED, JobAttempt.attempt == Job.attempts)
    retried = db.session.execute(
        select(Job.actor, attempt_bucket, func.count())
        .join(Job, Job.id == JobAttempt.job_id)
        .where(
            JobAttempt.finished_at >= since,
            JobAttempt.outcome == "failed",
            not_(last_of_failed),
        )
        .group_by(Job.actor, attempt_bucket)
    )
    for actor, at, n in retried:
        metrics["retried"][actor][at] = n
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
    return [
        QueueDepth(
            queue=queue,
            queued=queued,
            retrying=retrying,
            oldest_queued=as_utc(oldest),
        )
        for queue, queued, retrying, oldest in rows
    ]


def waits(since: datetime, recent: datetime) -> list[tuple[bool, float]]:
    """(finished since ``recent``, seconds from enqueue to start) of the newest
    jobs finished since ``since`` in their first attempt: a retry's wait is its
    backoff, not the queue's. Read from the finished jobs' index alone."""
    rows = db.session.execute(
        select(Job.finished_at >= recent, _seconds(Job.started_at, Job.created_at))
        .where(Job.finished_at >= since, Job.attempts == 1, Job.started_at.is_not(None))
        .order_by(Job.finished_at.desc())
        .limit(WAIT_SAMPLE)
    )
    return [(bool(is_recent), float(seconds)) for is_recent, seconds in rows]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def _series(per_actor: dict[str, dict[int, int]], *, buckets: int, minutes: int):
    """{actor: [rate per minute in each of ``buckets`` buckets]}, for the
    actors with any."""
    series = {}
    for actor, counts in sorted(per_actor.items()):
        values = [0.0] * buckets
        for bucket, n in counts.items():
            if 0 <= bucket < buckets:
                values[bucket] = n / minutes
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
    return render_template(
        "admin/overview.html",
        version=version,
        now=now,
        current=utcnow(),
        depths=depths,
        **minute_view(now),
    )


def minute_view(now: datetime) -> dict:
    """The charts, totals and waits up to the minute ``now``: computed once a
    minute in each web process, however many admins have the page open (a
    view of a minute is the same for all of them)."""
    cached = current_app.extensions.get("admin_overview")
    if cached is not None and cached[0] == now:
        return cached[1]
    view = _minute_view(now)
    current_app.extensions["admin_overview"] = (now, view)
    return view


def _minute_view(now: datetime) -> dict:
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(minutes=DAY_MINUTES)
    windows = {
        "hour": (hour_ago, 1, 60),
        "day": (day_ago, DAY_BUCKET, DAY_MINUTES // DAY_BUCKET),
    }
    counted = {window: outcomes(since, minutes) for window, (since, minutes, _) in windows.items()}
    sample = waits(day_ago, hour_ago)
    actors = sorted(
        {actor for metrics in counted.values() for per in metrics.values() for actor in per}
    )
    colors = charts.colors(actors)
    drawn = {
        window: {
            metric: charts.stacked_bars(
                _series(per_actor, buckets=buckets, minutes=minutes),
                colors=colors,
                minutes_per_bar=minutes,
            )
            for metric, per_actor in counted[window].items()
        }
        for window, (_, minutes, buckets) in windows.items()
    }
    totals = {
        window: {
            metric: sum(n for counts in per_actor.values() for n in counts.values())
            for metric, per_actor in metrics.items()
        }
        for window, metrics in counted.items()
    }
    wait = {
        "hour": [seconds for recent, seconds in sample if recent],
        "day": [seconds for _, seconds in sample],
    }
    return {
        "charts": drawn,
        "totals": totals,
        "colors": colors,
        "waits": {
            window: {
                "p50": percentile(values, 0.5),
                "p95": percentile(values, 0.95),
                "n": len(values),
            }
            for window, values in wait.items()
        },
        "sampled": len(sample) == WAIT_SAMPLE,
    }
