"""The periodic jobs and their intervals, built from the maintenance services
(``app/maintenance/``). Ticks are aligned to the epoch, so every scheduler
computes the same tick times and the same unique keys."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from app.jobs.kinds import JobKind
from app.maintenance import cleanup, relay, rescue, resend, scheduled
from app.maintenance.service import Service


@dataclass(frozen=True)
class Schedule:
    """A tick that runs its services one after the other, named after the first
    and on the interval they share. A service that is enqueued as a job (it has
    a kind) has a tick of its own."""

    services: tuple[Service, ...]

    def __post_init__(self):
        first, *more = self.services
        if more and any(service.kind is not None for service in self.services):
            raise ValueError(f"{first.name}: a service enqueued as a job shares no tick")
        if any(service.interval_setting != first.interval_setting for service in more):
            raise ValueError(f"{first.name}: services of one tick share its interval")

    @classmethod
    def of(cls, *services: Service) -> Schedule:
        return cls(services)

    @property
    def name(self) -> str:
        return self.services[0].name

    @property
    def interval_setting(self) -> str:
        return self.services[0].interval_setting

    @property
    def kind(self) -> JobKind | None:
        """The kind of job it enqueues, or None for work the scheduler does itself
        (the relay must run even while the broker is down, so it is not a message)."""
        return self.services[0].kind

    @property
    def interval_s(self) -> int:
        return self.services[0].interval_s


SCHEDULES = (
    Schedule.of(resend.SERVICE),
    Schedule.of(cleanup.SERVICE),
    # The due scheduled jobs and the rescue right after the relay, in one tick on
    # RELAY_INTERVAL_S with one outcome ("ok: published 1, scheduled_queued 0, rescued 0").
    Schedule.of(relay.SERVICE, scheduled.SERVICE, rescue.SERVICE),
)
BY_NAME = {schedule.name: schedule for schedule in SCHEDULES}


def latest_tick(interval_s: int, now: datetime) -> datetime:
    """The most recent tick at or before ``now``: a multiple of the interval since the epoch."""
    seconds = int(now.timestamp()) // interval_s * interval_s
    return datetime.fromtimestamp(seconds, UTC)
