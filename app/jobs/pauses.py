"""Paused queues, as the job system sees them: no attempt starts on a paused
queue, and the relay and the rescue publish nothing for it.

How its messages wait: in the database, not in RabbitMQ. A message that
reaches a worker while its queue is paused claims nothing (the claim's UPDATE
checks ``paused_queues`` itself, so it holds on every worker process and
machine); its job is parked, ``queued`` with no ``published_at``, in the same
transaction, and the message is acknowledged. Nothing is dead-lettered, no
attempt or retry is spent, and RabbitMQ holds nothing for the queue but what
is on its way. On resume, the relay publishes the parked jobs within a relay
interval, oldest first, as it publishes any job whose publish is pending.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, update

from app.db import db
from app.models import Job, PausedQueue
from app.states import CLAIMABLE, JobStatus


def not_paused(queue_column) -> ColumnElement[bool]:
    """True for a row whose queue is not paused."""
    return ~exists().where(PausedQueue.name == queue_column)


def is_paused(queue: str) -> bool:
    return db.session.get(PausedQueue, queue) is not None


def park(job_id: str, series: int) -> bool:
    """Leave the job to wait in the database while its queue is paused: queued,
    unpublished (the relay's to publish once the queue is resumed), its
    attempts and retries as they were. False when the job was not waiting."""
    parked = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.series == series, Job.status.in_(CLAIMABLE))
        .values(status=JobStatus.QUEUED, published_at=None, next_retry_at=None)
    )
    return bool(parked.rowcount)  # type: ignore[attr-defined]
