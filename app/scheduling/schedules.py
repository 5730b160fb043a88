"""The periodic jobs and their intervals. Ticks are aligned to the epoch, so every
scheduler computes the same tick times and the same unique keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app

from app.jobs.kinds import JobKind
from app.maintenance.cleanup import CLEANUP
from app.maintenance.resend import RESEND_FAILED_EMAILS


@dataclass(frozen=True)
class Schedule:
    name: str
    interval_setting: str
    # The kind of job it enqueues, or None for work the scheduler does itself
    # (the relay must run even while the broker is down, so it is not a message).
    kind: JobKind | None

    @property
    def interval_s(self) -> int:
        return max(1, current_app.config[self.interval_setting])


SCHEDULES = (
    Schedule("resend_failed_emails", "RESEND_INTERVAL_S", RESEND_FAILED_EMAILS),
    Schedule("cleanup", "CLEANUP_INTERVAL_S", CLEANUP),
    Schedule("relay", "RELAY_INTERVAL_S", None),
)
BY_NAME = {schedule.name: schedule for schedule in SCHEDULES}


def latest_tick(interval_s: int, now: datetime) -> datetime:
    """The most recent tick at or before ``now``: a multiple of the interval since the epoch."""
    seconds = int(now.timestamp()) // interval_s * interval_s
    return datetime.fromtimestamp(seconds, UTC)
