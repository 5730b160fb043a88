"""Enqueue through the database (the transactional outbox).

A job is published only after its row is committed, and its row records that it
was handed to the broker (``published_at``). If publishing fails, the row stays
``queued`` with no ``published_at`` and the relay (``app/maintenance/relay.py``)
publishes it later, so no job is lost between the database and the broker.

A job may be published twice (a relay racing a slow request, two relays at once,
a rescue); that is harmless, because a worker runs a message only when
``attempts.start_attempt`` claims its job, which one copy does.

``published_at`` is written here, by the publishes of this module and by the
statements it gives a rescue to write it with, and by a requeue with the
``Outgoing`` time that ``commit_then_publish`` then keeps or takes back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import dramatiq
from sqlalchemy import ColumnElement, Table, Update, insert, update
from sqlalchemy.exc import DBAPIError

from app.db import db, dialect, utcnow
from app.jobs.broker import current_broker
from app.list_params import one_of
from app.models import Job
from app.states import JobStatus

logger = logging.getLogger(__name__)

# How long a request may spend publishing its job, in total, before it leaves the
# job to the relay: a broker alarm (publishes blocked) or an unreachable broker
# must not hold a request past its time (gunicorn's is 30 s).
REQUEST_PUBLISH_S = 3.0


def message_for(job: Job) -> dramatiq.Message:
    return _message(job.id, job.queue, job.actor, job.args, job.series, job.retries, job.created_at)


def message_for_values(job: Mapping[Any, Any]) -> dramatiq.Message:
    """``message_for`` a job given as its column values (a row to insert, or a
    selected row's ``_mapping``)."""
    return _message(*(job[name] for name in MESSAGE_COLUMNS))


MESSAGE_COLUMNS = ("id", "queue", "actor", "args", "series", "retries", "created_at")


def _message(id, queue, actor, args, series, retries, created_at) -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=queue,
        actor_name=actor,
        args=tuple(args),
        kwargs={},
        # The series tells a stale copy from a current one; ``retries`` keeps a
        # rescued copy's count (the worker sets the rest of the retry policy).
        options={"series": series, "retries": retries},
        message_id=id,
        message_timestamp=int(created_at.timestamp() * 1000),
    )


@dataclass(frozen=True)
class Outgoing:
    """Jobs written in the current transaction with ``published_at`` = ``at``,
    and their messages, built before the commit."""

    messages: list[dramatiq.Message]
    at: datetime


def outgoing(jobs: list[dict[str, Any]]) -> Outgoing:
    """Mark the jobs (``state.new_job_values``) published and build their
    messages, for a caller that inserts them itself in the current transaction
    (one statement with rows of its own); ``commit_then_publish`` hands them on."""
    at = utcnow()
    ready = []
    for job in jobs:
        # A scheduled job has no message until it is due (the relay queues it then).
        due = job["status"] != JobStatus.SCHEDULED
        job["published_at"] = at if due else None
        if due:
            ready.append(message_for_values(job))
    return Outgoing(ready, at)


# Core, on the session's connection: the ORM's bulk INSERT of ``insert(Job)``
# costs more CPU than the statement itself.
_INSERT_JOBS = insert(cast(Table, Job.__table__))


def insert_jobs(jobs: list[dict[str, Any]]) -> Outgoing:
    """Add the jobs (``state.new_job_values``) to the current transaction in one
    multi-row INSERT, marked published; ``commit_then_publish`` hands them on."""
    sending = outgoing(jobs)
    db.session.connection().execute(_INSERT_JOBS, jobs)
    return sending


def commit_and_publish(*jobs: Job) -> None:
    """``commit_then_publish`` for jobs added to the session as objects."""
    at = utcnow()
    for job in jobs:
        job.published_at = at
    commit_then_publish(Outgoing([message_for(job) for job in jobs], at))


def commit_then_publish(outgoing: Outgoing) -> None:
    """Commit the current transaction, then publish its new jobs in one batch.

    ``published_at`` is written with the jobs, in the same commit, and cleared
    again (one UPDATE) for those the broker did not confirm, so that a request
    costs one commit, not two. Should the process die between that commit and
    the publish, the jobs look published but their messages never were: the
    rescue (app/maintenance/rescue.py) finds them like any message lost later,
    after a grace window instead of a relay interval. The messages are built
    first, so publishing touches no database transaction. The batch gives up
    after ``REQUEST_PUBLISH_S``, so that a request answers at once while the
    broker is blocked or away."""
    db.session.commit()
    if not outgoing.messages:
        return
    confirmed = _enqueue_many(outgoing.messages, within=REQUEST_PUBLISH_S)
    missed = [m.message_id for m in outgoing.messages if m.message_id not in confirmed]
    if missed:
        _unpublished(missed, outgoing.at)


def publish(message: dramatiq.Message) -> bool:
    """Hand a committed job's message to the broker; True once the broker has
    confirmed it, and its ``published_at`` is set.

    Never raises for a broker fault: the row is safe in the database and the
    relay will publish it when the broker is back. Not bounded like a request's
    publish: Dramatiq's own retries may wait up to a minute for a blocked broker."""
    if not _enqueue(message):
        return False
    mark_published([message.message_id])
    return True


def publish_many(messages: list[dramatiq.Message]) -> set[str]:
    """Hand committed jobs' messages to the broker in one batch (one wait for
    its confirms) and set ``published_at`` of those it confirmed, in one UPDATE
    and one commit; returns their ids. Never raises for a broker fault, as
    ``publish``."""
    confirmed = _enqueue_many(messages)
    if confirmed:
        mark_published(list(confirmed))
    return confirmed


def _enqueue(message: dramatiq.Message, *, within: float | None = None) -> bool:
    try:
        current_broker().publish(message, within=within)
    except Exception:
        logger.warning(
            "job %s not published; the relay will retry", message.message_id, exc_info=True
        )
        return False
    return True


def _enqueue_many(messages: list[dramatiq.Message], *, within: float | None = None) -> set[str]:
    try:
        confirmed = current_broker().publish_many(messages, within=within)
    except Exception:
        confirmed = set()
        logger.warning("publishing %d jobs failed", len(messages), exc_info=True)
    if len(confirmed) < len(messages):
        logger.warning(
            "%d of %d jobs not published; the relay will retry",
            len(messages) - len(confirmed),
            len(messages),
        )
    return confirmed


def _unpublished(job_ids: list[str], published_at: datetime) -> None:
    """The publish failed: leave the jobs to the relay."""
    try:
        db.session.execute(
            update(Job)
            .where(one_of(dialect(), Job.id, job_ids), Job.published_at == published_at)
            .values(published_at=None)
        )
        db.session.commit()
    except DBAPIError:
        db.session.rollback()
        logger.warning(
            "%d jobs are marked published but are not; the rescue will find them", len(job_ids)
        )


def mark_published(job_ids: list[str]) -> None:
    """The broker confirmed the jobs' messages (``publish``, which the relay calls)."""
    db.session.execute(
        update(Job)
        .where(one_of(dialect(), Job.id, job_ids), Job.published_at.is_(None))
        .values(published_at=utcnow())
    )
    db.session.commit()


def unpublished() -> ColumnElement[bool]:
    """Jobs committed but not yet handed to the broker: what the relay publishes."""
    return Job.published_at.is_(None) & (Job.status == JobStatus.QUEUED)


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
