"""What /admin/schedules and ``flask schedules list`` show of each periodic job."""

from __future__ import annotations

from datetime import timedelta

from app.db import db, utcnow
from app.models import Job, ScheduleState
from app.scheduling import lease
from app.scheduling.schedules import SCHEDULES, latest_tick


def schedule_rows() -> list[dict]:
    now = utcnow()
    rows = []
    for schedule in SCHEDULES:
        state = db.session.get(ScheduleState, schedule.name)
        interval = schedule.interval_s
        last_run = state.last_run_at if state else None
        outcome = state.last_outcome if state else None
        if state and state.last_job_id:
            job = db.session.get(Job, state.last_job_id)
            outcome = f"job {job.status}" if job else outcome
        rows.append(
            {
                "name": schedule.name,
                "interval_s": interval,
                "last_run_at": last_run,
                "next_run_at": latest_tick(interval, now) + timedelta(seconds=interval),
                "last_outcome": outcome or "never ran",
                "last_job_id": state.last_job_id if state else None,
                # Overdue: nothing for twice its interval (or it never ran).
                "stale": last_run is None or now - last_run > timedelta(seconds=2 * interval),
            }
        )
    return rows


def leader() -> dict | None:
    current = lease.current()
    if current is None:
        return None
    return {"holder": current.holder, "expires_at": current.expires_at}
