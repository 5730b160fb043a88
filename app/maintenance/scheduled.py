"""Scheduled jobs coming due: a ``scheduled`` job (an email with ``send_at``)
waits in the database, not in RabbitMQ's delay queue, whose messages a
``consumer_timeout`` or a restart can disturb. Every relay interval the
scheduler queues the jobs whose time has come and publishes them, through the
outbox like any new job: a publish the broker does not confirm leaves the job
to the relay. Two schedulers at once queue each job once (one conditional
UPDATE); a copy published twice runs once (the claim)."""

from __future__ import annotations

from app.db import utcnow
from app.jobs import outbox, state
from app.maintenance.service import Service, Summary

BATCH = 1000


def queue_due_jobs(*, batch: int = BATCH) -> Summary:
    queued = 0
    while True:
        at = utcnow()
        rows = state.queue_due(published_at=at, limit=batch)
        outbox.commit_then_publish(
            outbox.Outgoing([outbox.message_for_values(row) for row in rows], at)
        )
        queued += len(rows)
        if len(rows) < batch:
            return {"scheduled_queued": queued}


SERVICE = Service("scheduled", "RELAY_INTERVAL_S", queue_due_jobs)
