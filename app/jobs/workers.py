"""Worker processes and their leases.

Each worker process has a row in ``workers``. A heartbeat thread renews it every
third of ``JOB_LEASE_S``, in one write however many jobs the process is running:
a job is owned while the row of its ``worker_id`` has not expired. The same write
records, per queue, the latest ``published_at`` among the jobs the process has
claimed (the rescue uses it; see ``app/jobs/rescue.py``).

A process that cannot renew its lease (the database is away longer than the
lease) may find its jobs taken over; its later writes name a claim that is no
longer the job's, so they change nothing (``app/jobs/attempts.py``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from app.db import db, utcnow
from app.models import Worker

logger = logging.getLogger(__name__)


class WorkerLease:
    """This process's row in ``workers``, renewed by a daemon thread."""

    def __init__(self, app, queues: list[str]):
        self.app = app
        self.queues = sorted(queues)
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=app.config["JOB_LEASE_S"])
        self._claimed: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            self.renew()
        except DBAPIError as error:
            logger.warning("worker lease not registered (%s); trying again", error.orig)
        self._thread = threading.Thread(target=self._run, name="worker-lease", daemon=True)
        self._thread.start()

    def note_claim(self, queue: str, published_at: datetime | None) -> None:
        if published_at is None:
            return
        with self._lock:
            if queue not in self._claimed or published_at > self._claimed[queue]:
                self._claimed[queue] = published_at

    def renew(self) -> None:
        with self._lock:
            claimed = {queue: at.isoformat() for queue, at in self._claimed.items()}
        now = utcnow()
        with self.app.app_context():
            renewed = db.session.execute(
                update(Worker)
                .where(Worker.id == self.id)
                .values(heartbeat_at=now, expires_at=now + self.lease, claimed=claimed)
            ).rowcount
            if not renewed:  # pruned after a long outage: register again
                db.session.add(
                    Worker(
                        id=self.id,
                        queues=self.queues,
                        started_at=now,
                        heartbeat_at=now,
                        expires_at=now + self.lease,
                        claimed=claimed,
                    )
                )
            db.session.commit()

    def stop(self) -> None:
        """Release the lease: the jobs this process ran have finished (or will be
        taken over by others at once, not after the lease runs out)."""
        self._stop.set()
        try:
            with self.app.app_context():
                db.session.execute(delete(Worker).where(Worker.id == self.id))
                db.session.commit()
        except DBAPIError:
            logger.warning("could not release worker lease %s; it expires by itself", self.id)

    def _run(self) -> None:
        interval = self.lease.total_seconds() / 3
        wait = interval
        while not self._stop.wait(wait):
            try:
                self.renew()
                wait = interval
            except DBAPIError as error:
                logger.warning("worker lease not renewed (%s); trying again", error.orig)
                wait = min(interval, 1.0)
            except Exception:
                logger.exception("worker lease not renewed; trying again")
                wait = min(interval, 1.0)
