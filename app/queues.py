"""Pausing and resuming a queue, as the admin pages, the API and the command line
offer it, each change in the audit log; and each queue's state for the admin.
What a pause does to the job system is in ``app/jobs/pauses.py``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import IntegrityError

from app import audit
from app.db import as_utc, db, utcnow
from app.jobs import kinds
from app.models import Job, PausedQueue
from app.states import JobStatus

COUNTED = (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING, JobStatus.SCHEDULED)


class UnknownQueue(LookupError):
    """No actor of the app uses a queue of this name."""


@dataclass(frozen=True)
class QueueState:
    name: str
    paused: bool
    queued: int
    running: int
    retrying: int
    scheduled: int
    oldest_queued_s: float | None

    def as_json(self) -> dict:
        return asdict(self)


def known() -> tuple[str, ...]:
    """The queues the app's actors use."""
    return kinds.registry().queues


def pause(name: str) -> bool:
    """Pause the queue; its audit entry commits with it. False when it was
    paused already (recorded too: an admin pressed the button)."""
    _check(name)
    was_paused = db.session.get(PausedQueue, name) is not None
    if not was_paused:
        db.session.add(PausedQueue(name=name, paused_at=utcnow()))
    audit.record("pause_queue", {"queue": name}, {"was_paused": was_paused})
    try:
        db.session.commit()
    except IntegrityError:  # another admin paused it at the same moment
        db.session.rollback()
        return pause(name)
    return not was_paused


def resume(name: str) -> bool:
    """Resume the queue (the relay publishes its parked jobs within a relay
    interval); its audit entry commits with it. False when it was not paused."""
    _check(name)
    removed = db.session.execute(delete(PausedQueue).where(PausedQueue.name == name))
    was_paused = bool(removed.rowcount)  # type: ignore[attr-defined]
    audit.record("resume_queue", {"queue": name}, {"was_paused": was_paused})
    db.session.commit()
    return was_paused


def states() -> list[QueueState]:
    """Every queue: paused or not, its jobs queued, running and retrying, and
    how long its oldest queued job has waited. One GROUP BY over the status
    index (which holds each job's queue on PostgreSQL)."""
    now = utcnow()
    paused = set(db.session.scalars(select(PausedQueue.name)))
    rows = db.session.execute(
        select(
            Job.queue,
            *(func.count().filter(Job.status == status) for status in COUNTED),
            func.min(case((Job.status == JobStatus.QUEUED, Job.created_at))),
        )
        .where(Job.status.in_(COUNTED))
        .group_by(Job.queue)
    ).all()
    found = {row[0]: tuple(row[1:]) for row in rows}
    names = list(dict.fromkeys([*known(), *sorted(paused)]))
    result = []
    for name in names:
        queued, running, retrying, scheduled, last = found.get(name, (0, 0, 0, 0, None))
        oldest = as_utc(last)
        result.append(
            QueueState(
                name=name,
                paused=name in paused,
                queued=queued,
                running=running,
                retrying=retrying,
                scheduled=scheduled,
                oldest_queued_s=round((now - oldest).total_seconds(), 1) if oldest else None,
            )
        )
    return result


def _check(name: str) -> None:
    if name not in known():
        raise UnknownQueue(name)
