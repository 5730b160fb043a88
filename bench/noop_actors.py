"""No-op actors for bench/noop.py.

``dramatiq actors bench.noop_actors``: ``bench_noop`` on the project's broker,
so with the project's whole middleware (app context, job state, retries...);
its jobs are rows of kind ``BENCH_NOOP`` made with ``state.new_job`` and
published by the outbox. It has no hooks, so the worker's app runs its jobs
without having it registered.
"""

from __future__ import annotations

import dramatiq

import broker  # noqa: F401  (the project's broker and middleware, as ``actors`` sets up)
from app.jobs.kinds import JobKind

# A no-op takes no time: a minute is far more than any attempt needs.
BENCH_NOOP = JobKind(actor="bench_noop", queue="bench", time_limit_ms=60_000)


@dramatiq.actor(**BENCH_NOOP.actor_options())
def bench_noop() -> None:
    """Nothing: what is measured is the job system around it."""
