"""The relay: publishes the jobs that are committed but not yet handed to the
broker (the publish after their commit failed: the broker was down or
blocked), oldest first. It runs in the scheduler itself, not as a message, so
that it works while the broker is down; ``flask jobs relay`` runs it by hand.

A job it publishes may already have a message (a request's publish that gave up
and landed later): harmless, one copy claims the job (``app/jobs/outbox.py``)."""

from __future__ import annotations

from sqlalchemy import select

from app.db import db
from app.jobs import outbox
from app.maintenance.service import Service, Summary
from app.models import Job

BATCH = 500


def relay(*, limit: int = BATCH) -> Summary:
    """Publish up to ``limit`` waiting jobs. Stops at the first failure (the
    broker is down: the rest would fail too)."""
    published = 0
    while published < limit:
        messages = [
            outbox.message_for(job)
            for job in db.session.scalars(
                select(Job)
                .where(outbox.unpublished())
                .order_by(Job.created_at, Job.id)
                .limit(min(100, limit - published))
            )
        ]
        db.session.rollback()  # publish outside any transaction
        if not messages:
            break
        for message in messages:
            if not outbox.publish(message):
                return {"published": published}
            published += 1
    return {"published": published}


SERVICE = Service("relay", "RELAY_INTERVAL_S", relay, metrics=("jobs_unpublished",))
