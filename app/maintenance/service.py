"""The one shape of a maintenance service: what runs, how often, what it logs,
and which metrics show its work.

``run`` makes one pass and returns what it did as counts (``{"published": 3}``);
``run_once`` runs it and logs one line with those counts (with
``LOG_FORMAT=json`` they are fields of the line: ``service``, ``counts``). The
line is INFO when the pass did something and DEBUG when every count is 0, so
that a relay every few seconds does not drown the scheduler's log.

The schedule table (``app/scheduling/schedules.py``) is built from the services.
A service with a ``kind`` is enqueued as a job of that kind, whose actor
(``actors/maintenance.py``) calls ``run_once`` on a worker; a service without
one is run by the scheduler itself, so that it works while the broker is down.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app

from app.jobs.kinds import JobKind

# What one pass did: a count per thing it did, in the order it did them.
Summary = dict[str, int]


@dataclass(frozen=True)
class Service:
    name: str
    # The setting (app/config.py) that says how often it runs, in seconds.
    interval_setting: str
    run: Callable[[], Summary]
    # The kind of job a tick enqueues to run it; None: the scheduler runs it.
    kind: JobKind | None = None
    # The gauges of /metrics (app/metrics.py) that its passes move.
    metrics: tuple[str, ...] = ()

    @property
    def interval_s(self) -> int:
        return max(1, current_app.config[self.interval_setting])

    def run_once(self) -> Summary:
        summary = self.run()
        level = logging.INFO if any(summary.values()) else logging.DEBUG
        logging.getLogger(self.run.__module__).log(
            level,
            "%s: %s",
            self.name,
            describe(summary),
            extra={"service": self.name, "counts": dict(summary)},
        )
        return summary


def describe(summary: Summary) -> str:
    """``published 3, rescued 0``: a summary as the logs and /admin/schedules show it."""
    return ", ".join(f"{what} {count}" for what, count in summary.items())
