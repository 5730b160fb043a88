"""Finding jobs whose message was lost, and publishing them again.

A message can vanish with no trace in the database: a retry whose publish
failed after the job was marked ``retrying``, a queue purged or deleted by an
operator, a broker that lost unsynced data. Such jobs stay ``retrying`` long past
``next_retry_at``, or ``queued`` long after they were published while their queue
is empty. ``rescue_lost_jobs`` publishes them again.

A rescued job cannot run twice at once, even if the old message turns up after
all: a worker runs a message only when ``state.start_attempt`` moves the job from
``queued``/``retrying`` to ``running`` in one conditional UPDATE. Whichever copy
comes first runs; the other finds the job ``running`` (or finished) and is
skipped. Only a RabbitMQ redelivery (its consumer died) may take over a
``running`` job.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from app.db import db, utcnow
from app.jobs import outbox
from app.models import Job

logger = logging.getLogger(__name__)

# How many relay intervals a job may look lost before it is rescued.
GRACE_INTERVALS = 6
BATCH = 500


def grace() -> timedelta:
    return timedelta(seconds=GRACE_INTERVALS * current_app.config["RELAY_INTERVAL_S"])


def rescue_lost_jobs() -> int:
    now = utcnow()
    cutoff = now - grace()
    overdue = select(Job).where(Job.status == "retrying", Job.next_retry_at < cutoff)
    stale = select(Job).where(
        Job.status == "queued", Job.published_at.is_not(None), Job.published_at < cutoff
    )
    messages = [outbox.message_for(job) for job in db.session.scalars(overdue.limit(BATCH))]
    empty_queues: dict[str, bool] = {}
    for job in db.session.scalars(stale.limit(BATCH)):
        if job.queue not in empty_queues:
            empty_queues[job.queue] = _queue_is_empty(job.queue)
        if empty_queues[job.queue]:
            messages.append(outbox.message_for(job))
    db.session.rollback()

    rescued = 0
    for message in messages:
        broker = outbox.get_broker()
        broker.declare_queue(message.queue_name)
        broker.enqueue(message)
        db.session.execute(
            update(Job).where(Job.id == message.message_id).values(published_at=utcnow())
        )
        db.session.commit()
        logger.warning("rescued job %s: its message was lost", message.message_id)
        rescued += 1
    return rescued


def _queue_is_empty(queue: str) -> bool:
    broker = outbox.get_broker()
    broker.declare_queue(queue)
    if hasattr(broker, "get_queue_message_counts"):  # RabbitMQ
        ready, delayed, _ = broker.get_queue_message_counts(queue)
        return ready == 0 and delayed == 0
    return broker.queues[queue].qsize() == 0  # the StubBroker
