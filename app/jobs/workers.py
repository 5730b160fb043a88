"""Worker processes and their leases.

Each worker process has a row in ``workers``. A heartbeat thread renews it every
third of ``JOB_LEASE_S``, in one write however many jobs the process is running:
a job is owned while the row of its ``worker_id`` has not expired. The same write
records, per queue, the latest ``published_at`` among the jobs the process has
claimed (the rescue uses it; see ``app/maintenance/rescue.py``).

The row is a lease of ``app/leases.py``, timed by the database's clock, so a
process whose clock runs ahead cannot take over live leases. Unlike the
scheduler's, it is named by its holder and never taken over itself (a dead
process's jobs are, each by its next attempt: ``app/jobs/attempts.py``), and it
is deleted when released, its claims with it. The heartbeat has a connection of
its own, so it never waits behind a pool that long exports keep busy.

Self-fencing: a process that has not renewed its lease for two thirds of it (the
database is away, the process was paused, its writer is stuck) may find its jobs
taken over, so it stops starting anything new: ``live()`` turns false, the
JobState middleware claims nothing until it is live again, and an attempt checks
it before any effect outside the database. A process whose job-state writer
makes no progress at all stops renewing, so that its jobs are taken over.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete

from app.db import bounded_engine, clock
from app.jobs import durable
from app.leases import LeaseTable
from app.models import Worker

logger = logging.getLogger(__name__)

# Past this fraction of the lease without a renewal the process fences itself.
FENCE_AFTER = 2 / 3
# How long a statement of the heartbeat may take on PostgreSQL.
STATEMENT_TIMEOUT_MS = 5000
# A row per worker process, named by its id.
LEASES = LeaseTable(Worker.id)


class WorkerLease:
    """This process's row in ``workers``, renewed by a daemon thread."""

    # The lease of this worker process, once started (what ``process_is_live`` reads).
    current: WorkerLease | None = None

    def __init__(self, app, queues: list[str]):
        self.app = app
        self.queues = sorted(queues)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_s = app.config["JOB_LEASE_S"]
        self.lease = timedelta(seconds=self.lease_s)
        self.engine = _heartbeat_engine(app.config["DATABASE_URL"])
        self._claimed: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewed = threading.Condition()
        self._live_until = 0.0  # time.monotonic()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        WorkerLease.current = self
        self._renew_or_warn()
        self._thread = threading.Thread(target=self._run, name="worker-lease", daemon=True)
        self._thread.start()

    def live(self) -> bool:
        """True while this process may start new work and effects (see the module)."""
        return time.monotonic() < self._live_until

    def wait_live(self, timeout: float) -> bool:
        """Wait until live (True), or stopped or ``timeout`` seconds passed (False)."""
        with self._renewed:
            return (
                self._renewed.wait_for(lambda: self.live() or self._stop.is_set(), timeout=timeout)
                and self.live()
            )

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def note_claim(self, queue: str, published_at: datetime | None) -> None:
        if published_at is None:
            return
        with self._lock:
            if queue not in self._claimed or published_at > self._claimed[queue]:
                self._claimed[queue] = published_at

    def renew(self) -> None:
        stalled = durable.stalled_for(self.app)
        if stalled > max(self.lease_s / 2, durable.STALLED_AFTER_S):
            raise WriterStalled(f"no job state written for {stalled:.0f} s")
        started = time.monotonic()
        with self._lock:
            claimed = {queue: at.isoformat() for queue, at in self._claimed.items()}
        with self.engine.begin() as connection:
            now = clock(self.engine)
            # A row is made when the process is new, or was pruned after a long outage.
            LEASES.take(
                connection,
                self.id,
                self.lease,
                values={"heartbeat_at": now, "claimed": claimed},
                created={"queues": self.queues, "started_at": now},
            )
        with self._renewed:
            self._live_until = started + self.lease_s * FENCE_AFTER
            self._renewed.notify_all()

    def stop(self, *, release: bool = True) -> None:
        """Stop renewing. With ``release``, delete the row: the jobs this process
        ran have finished, and any left are taken over at once rather than after
        the lease runs out. Without it (threads still running) the lease expires
        by itself, after those threads have died with the process."""
        with self._renewed:
            self._stop.set()
            self._live_until = 0.0
            self._renewed.notify_all()
        if WorkerLease.current is self:
            WorkerLease.current = None
        if self._thread is not None:
            self._thread.join(timeout=STATEMENT_TIMEOUT_MS / 1000 + 1)
        if release:
            try:
                with self.engine.begin() as connection:
                    connection.execute(delete(Worker).where(Worker.id == self.id))
            except Exception as error:
                logger.warning(
                    "could not release worker lease %s (%s); it expires by itself", self.id, error
                )
        self.engine.dispose()

    def _run(self) -> None:
        interval = self.lease_s / 3
        wait = interval
        while not self._stop.wait(wait):
            wait = interval if self._renew_or_warn() else min(interval, 1.0)

    def _renew_or_warn(self) -> bool:
        try:
            self.renew()
            return True
        except WriterStalled as stalled:
            logger.error(
                "worker lease %s not renewed: %s; its jobs will be taken over", self.id, stalled
            )
        except Exception as error:
            logger.warning(
                "worker lease not renewed (%s); trying again", getattr(error, "orig", None) or error
            )
        return False


class WriterStalled(Exception):
    """The process's job-state writer has made no progress for half a lease."""


def process_is_live() -> bool:
    """False in a worker process that has fenced itself (see the module); true
    outside a worker (a test or a command running an actor directly)."""
    lease = WorkerLease.current
    return lease is None or lease.live()


def _heartbeat_engine(database_url: str):
    return bounded_engine(database_url, connections=1, statement_timeout_ms=STATEMENT_TIMEOUT_MS)
