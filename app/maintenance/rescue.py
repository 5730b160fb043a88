"""Finding jobs whose message was lost, and publishing them again.

The database says which jobs should have a message somewhere; RabbitMQ cannot
be asked whether a given message is still there. So a job is taken for lost only
on evidence, and each is republished at most once per grace window (recorded in
its row: ``published_at``, ``rescues``), each rescue waiting four times longer
than the last, so that a job merely waiting is never copied again and again:

- ``running``, and its worker's lease expired: the worker died (or lost the
  database for longer than its lease). RabbitMQ redelivered its message at once,
  while the lease was still live, so that copy was skipped: it is gone.
- ``retrying``, long past ``next_retry_at``: the retry's publish failed after the
  state was written, or the delayed message was lost with a node.
- ``queued``, published long ago: a purged queue, or a broker that lost
  unsynced messages.

For the last two, a message may also just be waiting: behind a backlog, in a
worker's prefetch buffer, or in the delay queue while no worker runs. So they
are rescued only while a worker serving the queue has been alive for a whole
grace window, and only when the message should have been consumed by now: the
queue holds no ready message, or workers have already claimed jobs published
more than a grace window after it (RabbitMQ queues are first in, first out; see
``Worker.claimed``).

Neither loses work: the row is not changed by a rescue except for its
bookkeeping, and a rescue that fails to publish is undone. Neither runs a job
twice: every copy of a message races for the job in ``attempts.start_attempt``'s
conditional UPDATE; one wins, the others find it running under a live lease, or
finished, and are skipped. A rescued copy carries the job's series and retry
count, so it neither revives a stale series nor resets the retries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.db import changed_rows, database_now, db
from app.jobs import outbox, pauses
from app.jobs.attempts import lease_is_live
from app.jobs.broker import current_broker
from app.maintenance.service import Service, Summary
from app.models import Job, Worker
from app.states import JobStatus

logger = logging.getLogger(__name__)

# How many relay intervals a job may look lost before it is rescued.
GRACE_INTERVALS = 6
# Each further rescue of the same job waits this many times longer than the last.
BACKOFF_FACTOR = 4
BATCH = 500
# Rows of workers whose lease expired this long ago are pruned.
DEAD_WORKER_RETENTION = timedelta(hours=1)


def grace() -> timedelta:
    return timedelta(seconds=GRACE_INTERVALS * current_app.config["RELAY_INTERVAL_S"])


def rescue_lost_jobs() -> Summary:
    # Leases are timed by the database's clock (app.db.clock): so is the rescue.
    now, window = database_now(), grace()
    cutoff = now - window
    serving, claimed = _workers(now, cutoff)
    if not serving:
        # No worker would take a rescued message: nothing to gain from copies.
        return {"rescued": 0}
    expired_lease = select(Job).where(Job.status == JobStatus.RUNNING, ~lease_is_live(now))
    overdue = select(Job).where(Job.status == JobStatus.RETRYING, Job.next_retry_at < cutoff)
    stale = select(Job).where(
        Job.status == JobStatus.QUEUED, Job.published_at.is_not(None), Job.published_at < cutoff
    )
    lost: list[Job] = []
    idle: dict[str, bool] = {}
    for query in (expired_lease, overdue, stale):
        waiting = query.where(Job.queue.in_(serving), pauses.not_paused(Job.queue))
        for job in db.session.scalars(waiting.limit(BATCH)):
            if _backing_off(job, now, window):
                continue
            if job.status != JobStatus.RUNNING and _may_be_waiting(job, claimed, idle, window):
                continue
            lost.append(job)
    db.session.rollback()
    return {"rescued": sum(_republish(job, now) for job in lost)}


def _workers(now: datetime, cutoff: datetime) -> tuple[set[str], dict[str, datetime]]:
    """The queues served by a worker alive since ``cutoff``, and per queue the
    latest ``published_at`` any worker has claimed. Prunes long-dead workers."""
    db.session.execute(delete(Worker).where(Worker.expires_at < now - DEAD_WORKER_RETENTION))
    db.session.commit()
    serving: set[str] = set()
    claimed: dict[str, datetime] = {}
    for worker in db.session.scalars(select(Worker)):
        if worker.expires_at > now and worker.started_at <= cutoff:
            serving.update(worker.queues)
        for queue, at in (worker.claimed or {}).items():
            at = datetime.fromisoformat(at)
            claimed[queue] = max(claimed.get(queue, at), at)
    return serving, claimed


def _may_be_waiting(job: Job, claimed: dict, idle: dict, window: timedelta) -> bool:
    """A queued or retrying job's message may still be in line: no job published
    a window after it has been claimed yet, and its queue holds ready messages."""
    position = max(filter(None, (job.published_at, job.next_retry_at)))
    if claimed.get(job.queue, position) > position + window:
        return False  # overtaken: later messages were consumed before it
    if job.queue not in idle:
        idle[job.queue] = _queue_is_empty(job.queue)
    return not idle[job.queue]


def _backing_off(job: Job, now: datetime, window: timedelta) -> bool:
    if job.published_at is None:
        return False
    return job.published_at > now - window * BACKOFF_FACTOR**job.rescues


def _republish(job: Job, now: datetime) -> int:
    """Record the rescue (a conditional UPDATE: two relays cannot both rescue
    one job in one window), then publish; undo the record if publishing fails."""
    before, status, message = job.published_at, job.status, outbox.message_for(job)
    record = outbox.republishing(job.id, status=status, was=before, at=now)
    if not changed_rows(record.values(rescues=Job.rescues + 1)):
        db.session.rollback()
        return 0
    db.session.commit()
    try:
        current_broker().publish(message)
    except Exception:
        logger.warning(
            "could not republish lost job %s; will try again", message.message_id, exc_info=True
        )
        undo = outbox.undo_publish(message.message_id, now, back_to=before)
        db.session.execute(undo.values(rescues=Job.rescues - 1))
        db.session.commit()
        return 0
    logger.warning(
        "rescued %s job %s (%s): its message was lost",
        status,
        message.message_id,
        message.actor_name,
    )
    return 1


def _queue_is_empty(queue: str) -> bool:
    return current_broker().queue_depth(queue) == 0


# On the relay's interval, which also sizes its grace window: it runs right after
# the relay, in the relay's tick (app/scheduling/schedules.py).
SERVICE = Service("rescue", "RELAY_INTERVAL_S", rescue_lost_jobs)
