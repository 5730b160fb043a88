"""A worker's graceful shutdown gives every running job the whole
``--worker-shutdown-timeout``.

Dramatiq 2.2's ``join_all`` (``dramatiq/common.py``) subtracts the time elapsed
since the first join from what was left after the previous join, so the budget
runs out early once three or more threads are busy: an 18 s job was abandoned
after 13.5 s of a 20 s timeout. ``Worker.stop`` calls it by the name imported
into ``dramatiq.worker``, which is replaced here by one deadline for all joins.
"""

from __future__ import annotations

import time

import dramatiq.worker


def join_all(joinables, timeout: float) -> None:
    """Join each of ``joinables`` within ``timeout`` milliseconds in total."""
    deadline = time.monotonic() + timeout / 1000
    for joinable in joinables:
        joinable.join(timeout=max(0.0, deadline - time.monotonic()))


def give_every_thread_the_whole_timeout() -> None:
    dramatiq.worker.join_all = join_all
