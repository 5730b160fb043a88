"""The relay: publishes the jobs that are committed but not yet handed to the
broker (the publish after their commit failed: the broker was down or
blocked), oldest first. It runs in the scheduler itself, not as a message, so
that it works while the broker is down; ``flask jobs relay`` runs it by hand.

A job it publishes may already have a message (a request's publish that gave up
and landed later): harmless, one copy claims the job (``app/jobs/outbox.py``)."""

from __future__ import annotations

import dramatiq
from sqlalchemy import select

from app.db import db
from app.jobs import outbox, pauses
from app.maintenance.service import Service, Summary
from app.models import Job

BATCH = 1000
# A run's bound: a few seconds of publishing, after which the next run (or the
# next call of ``flask jobs relay``'s loop) goes on.
RUN_LIMIT = 20 * BATCH


def relay(*, limit: int = RUN_LIMIT, batch: int = BATCH) -> Summary:
    """Publish up to ``limit`` waiting jobs, oldest first, ``batch`` at a time:
    each batch is one SELECT, one publish with one wait for the broker's
    confirms, and one UPDATE and commit for the confirmed jobs. Stops at the
    first batch the broker did not confirm whole (it is down or refusing: the
    rest would fail too); its unconfirmed jobs stay unpublished for the next run."""
    published = 0
    while published < limit:
        messages = _waiting(min(batch, limit - published))
        db.session.rollback()  # publish outside any transaction
        if not messages:
            break
        confirmed = outbox.publish_many(messages)
        published += len(confirmed)
        if len(confirmed) < len(messages):
            break
    return {"published": published}


def _waiting(size: int) -> list[dramatiq.Message]:
    columns = [getattr(Job, name) for name in outbox.MESSAGE_COLUMNS]
    rows = db.session.execute(
        select(*columns)
        .where(outbox.unpublished(), pauses.not_paused(Job.queue))
        .order_by(Job.created_at, Job.id)
        .limit(size)
    )
    return [outbox.message_for_values(row._mapping) for row in rows]


SERVICE = Service("relay", "RELAY_INTERVAL_S", relay, metrics=("jobs_unpublished",))
