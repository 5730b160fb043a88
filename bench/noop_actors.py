"""No-op actors for bench/noop.py.

``dramatiq actors bench.noop_actors``: ``bench_noop`` on the project's broker,
so with the project's whole middleware (app context, job state, retries...);
its jobs are rows made with ``state.new_job`` and published by the outbox.
"""

from __future__ import annotations

import dramatiq

import broker  # noqa: F401  (the project's broker and middleware, as ``actors`` sets up)

QUEUE = "bench"


@dramatiq.actor(actor_name="bench_noop", queue_name=QUEUE)
def bench_noop() -> None:
    """Nothing: what is measured is the job system around it."""
