"""Enqueue through the database (the transactional outbox).

A job is published only after its row is committed, and its row records that it
was handed to the broker (``published_at``). If publishing fails, the row stays
``queued`` with no ``published_at`` and the relay (``app/maintenance/relay.py``)
publishes it later, so no job is lost between the database and the broker.

A job may be published twice (a relay racing a slow request, two relays at once,
a rescue); that is harmless, because a worker runs a message only when
``attempts.start_attempt`` claims its job, which one copy does.

``published_at`` is written here only: by the publishes of this module, and by
the statements and values it gives a requeue and a rescue to write it with.
"""

from __future__ import annotations

import logging
from datetime import datetime

import dramatiq
from sqlalchemy import ColumnElement, Update, update
from sqlalchemy.exc import DBAPIError

from app.db import db, utcnow
from app.jobs.broker import current_broker
from app.models import Job
from app.states import JobStatus

logger = logging.getLogger(__name__)

# How long a request may spend publishing its job, in total, before it leaves the
# job to the relay: a broker alarm (publishes blocked) or an unreachable broker
# must not hold a request past its time (gunicorn's is 30 s).
REQUEST_PUBLISH_S = 3.0


def message_for(job: Job) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=job.queue,
        actor_name=job.actor,
        args=tuple(job.args),
        kwargs={},
        # The series tells a stale copy from a current one; ``retries`` keeps a
        # rescued copy's count (the worker sets the rest of the retry policy).
        options={"series": job.series, "retries": job.retries},
        message_id=job.id,
        message_timestamp=int(job.created_at.timestamp() * 1000),
    )


def commit_and_publish(*jobs: Job) -> None:
    """Commit the current transaction, then publish its new jobs.

    ``published_at`` is written with the job, in the same commit, and cleared
    again if publishing fails, so that a request costs one commit, not two.
    Should the process die between that commit and the publish, the job looks
    published but its message never was: the rescue (app/maintenance/rescue.py) finds
    it like any message lost later, after a grace window instead of a relay
    interval. The messages are built first, so publishing touches no database
    transaction. Each publish gives up after ``REQUEST_PUBLISH_S``, so that a
    request answers at once while the broker is blocked or away."""
    now = utcnow()
    for job in jobs:
        job.published_at = now
    messages = [message_for(job) for job in jobs]
    db.session.commit()
    for message in messages:
        if not _enqueue(message, within=REQUEST_PUBLISH_S):
            _unpublished(message.message_id, now)


def publish(message: dramatiq.Message) -> bool:
    """Hand a committed job's message to the broker; True once the broker has
    confirmed it, and its ``published_at`` is set.

    Never raises for a broker fault: the row is safe in the database and the
    relay will publish it when the broker is back. Not bounded like a request's
    publish: Dramatiq's own retries may wait up to a minute for a blocked broker
    (the relay, which calls this, runs in the scheduler, on no one's request)."""
    if not _enqueue(message):
        return False
    mark_published(message.message_id)
    return True


def _enqueue(message: dramatiq.Message, *, within: float | None = None) -> bool:
    try:
        current_broker().publish(message, within=within)
    except Exception:
        logger.warning(
            "job %s not published; the relay will retry", message.message_id, exc_info=True
        )
        return False
    return True


def _unpublished(job_id: str, published_at: datetime) -> None:
    """The publish failed: leave the job to the relay."""
    try:
        db.session.execute(undo_publish(job_id, published_at, back_to=None))
        db.session.commit()
    except DBAPIError:
        db.session.rollback()
        logger.warning("job %s is marked published but is not; the rescue will find it", job_id)


def mark_published(job_id: str) -> None:
    """The broker confirmed the job's message (``publish``, which the relay calls)."""
    db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.published_at.is_(None))
        .values(published_at=utcnow())
    )
    db.session.commit()


def unpublished() -> ColumnElement[bool]:
    """Jobs committed but not yet handed to the broker: what the relay publishes."""
    return Job.published_at.is_(None) & (Job.status == JobStatus.QUEUED)


def left_to_relay() -> dict:
    """The values that say a job's message is not in the broker, for an UPDATE
    that changes more (a requeue: the caller publishes the job, else the relay)."""
    return {"published_at": None}


def republishing(job_id: str, *, status: str, was: datetime | None, at: datetime) -> Update:
    """An UPDATE that records that the job is published again ``at``, if its row
    still has the ``status`` and the ``published_at`` (``was``) it was read with:
    of two callers at once, one changes it. The caller adds what it records with
    the publish (``.values(...)``), commits, then publishes."""
    same = Job.published_at.is_(None) if was is None else Job.published_at == was
    return update(Job).where(Job.id == job_id, Job.status == status, same).values(published_at=at)


def undo_publish(job_id: str, at: datetime, *, back_to: datetime | None) -> Update:
    """An UPDATE that takes back a publish recorded ``at`` that failed: the job's
    ``published_at`` is ``back_to`` again, unless it was published since."""
    return update(Job).where(Job.id == job_id, Job.published_at == at).values(published_at=back_to)
