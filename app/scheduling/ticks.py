"""Running one tick of a periodic job, exactly once however many schedulers run.

Claiming a tick is one conditional UPDATE of the schedule's row (``last_tick_at``
moves forward only), committed together with the job it enqueues; the job also
carries the unique key ``schedule@tick``. So even two schedulers that both
believe they lead (the moment of a takeover) cannot enqueue one tick twice.
Only the latest due tick is ever claimed: after downtime a schedule runs once
to catch up, not once per missed tick."""

from __future__ import annotations

import logging

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from app.db import changed_rows, db, utcnow
from app.jobs import outbox, state
from app.maintenance.service import Summary, describe
from app.models import ScheduleState
from app.scheduling.schedules import BY_NAME, SCHEDULES, Schedule, latest_tick

logger = logging.getLogger(__name__)


def ensure_rows() -> None:
    """One row per schedule, with its configured interval."""
    for schedule in SCHEDULES:
        row = db.session.get(ScheduleState, schedule.name)
        if row is None:
            db.session.add(ScheduleState(name=schedule.name, interval_s=schedule.interval_s))
        else:
            row.interval_s = schedule.interval_s
    try:
        db.session.commit()
    except IntegrityError:  # another scheduler inserted them first
        db.session.rollback()


def run_due(name: str) -> bool:
    """Claim and run the latest due tick of ``name``; False when it was already claimed."""
    schedule = BY_NAME[name]
    now = utcnow()
    tick = latest_tick(schedule.interval_s, now)
    claimed = changed_rows(
        update(ScheduleState)
        .where(
            ScheduleState.name == name,
            or_(ScheduleState.last_tick_at.is_(None), ScheduleState.last_tick_at < tick),
        )
        .values(last_tick_at=tick, last_run_at=now, interval_s=schedule.interval_s)
    )
    if not claimed:
        db.session.rollback()
        return False
    if schedule.kind is not None:
        try:
            job = state.new_job(schedule.kind, args=[])
            job.unique_key = f"{name}@{tick.isoformat()}"
            db.session.execute(
                update(ScheduleState)
                .where(ScheduleState.name == name)
                .values(last_job_id=job.id, last_outcome="enqueued")
            )
            outbox.commit_and_publish(job)
        except IntegrityError:  # this tick's job exists: another leader enqueued it
            db.session.rollback()
            return False
        logger.debug("enqueued %s for tick %s (job %s)", name, tick.isoformat(), job.id)
        return True
    db.session.commit()
    _record(name, _run_here(schedule))
    return True


def _run_here(schedule: Schedule) -> str:
    """Run the services of a tick the scheduler runs itself; its outcome."""
    summary: Summary = {}
    try:
        for service in schedule.services:
            summary |= service.run_once()
    except Exception as error:  # recorded for /admin/schedules, and tried again next tick
        logger.exception("%s failed", schedule.name)
        db.session.rollback()
        return f"error: {type(error).__name__}: {error}"
    return f"ok: {describe(summary)}"


def _record(name: str, outcome: str) -> None:
    db.session.execute(
        update(ScheduleState).where(ScheduleState.name == name).values(last_outcome=outcome)
    )
    db.session.commit()
