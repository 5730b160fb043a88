"""The scheduler: ``python scheduler.py``. APScheduler fires each periodic job on
its interval; only the holder of the lease in the database enqueues, and every
tick is claimed once in the database (``app/scheduling/ticks.py``). Any number of
schedulers may run; SIGTERM stops one cleanly and gives up its lease at once."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from datetime import UTC, datetime

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import DBAPIError

from app import create_app
from app.db import db
from app.scheduling import lease, ticks
from app.scheduling.schedules import SCHEDULES

logger = logging.getLogger("scheduler")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # ticks aligned to it: the same on every scheduler


class Leader:
    """Holds or waits for the lease; renews it at a third of its time to live."""

    def __init__(self, app, ttl_s: float):
        self.app = app
        self.ttl_s = ttl_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._valid_until = 0.0
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        return time.monotonic() < self._valid_until

    def renew(self) -> None:
        started = time.monotonic()
        was_leader = self.is_leader()
        try:
            with self.app.app_context():
                held = lease.acquire(self.holder, self.ttl_s)
        except Exception:
            logger.exception("could not renew the lease")
            held = False
        # Trust the lease for a little less than its time to live, counted from
        # before the renewal, so two schedulers never both believe they lead.
        self._valid_until = started + self.ttl_s * 0.8 if held else 0.0
        if held and not was_leader:
            logger.info("%s took the lease", self.holder)
            self.catch_up()  # a tick that fell due while no one led is run now, once
        elif was_leader and not held:
            logger.warning("%s lost the lease", self.holder)

    def run(self, name: str) -> None:
        if not self.is_leader():
            return
        with self._lock, self.app.app_context():
            try:
                ticks.run_due(name)
            except Exception:
                logger.exception("periodic job %s failed", name)

    def catch_up(self) -> None:
        for schedule in SCHEDULES:
            self.run(schedule.name)

    def release(self) -> None:
        self._valid_until = 0.0
        with self.app.app_context():
            lease.release(self.holder)
        logger.info("%s gave up the lease", self.holder)


def ensure_rows_patiently(*, first_wait_s: float = 0.5, max_wait_s: float = 15) -> None:
    """``ticks.ensure_rows``, tried again with backoff while the database is
    unreachable or read-only (a failover in progress): start-up waits it out
    instead of crashing. Each failed try drops the pooled connections, since a
    connection opened while the database was read-only stays read-only."""
    wait_s = first_wait_s
    while True:
        try:
            ticks.ensure_rows()
            return
        except DBAPIError as error:
            db.session.rollback()
            db.engine.dispose()
            logger.warning(
                "database not writable yet (%s); trying again in %.1fs",
                str(error.orig).strip().splitlines()[0],
                wait_s,
            )
        time.sleep(wait_s)
        wait_s = min(wait_s * 2, max_wait_s)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # APScheduler logs two INFO lines per run ("Running job", "executed
    # successfully"): with the lease renewal and the relay every few seconds that
    # drowns everything else. Failures still show (WARNING and above).
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    app = create_app()
    with app.app_context():
        ensure_rows_patiently()
        intervals = {schedule.name: schedule.interval_s for schedule in SCHEDULES}
    leader = Leader(app, ttl_s=app.config["SCHEDULER_LEASE_S"])
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        leader.renew, IntervalTrigger(seconds=leader.ttl_s / 3), next_run_time=datetime.now(UTC)
    )
    for name, interval_s in intervals.items():
        scheduler.add_job(
            leader.run,
            IntervalTrigger(seconds=interval_s, start_date=EPOCH),
            args=[name],
            id=name,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,
        )

    def stop(signum, _frame):
        logger.info("signal %d: stopping", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("scheduler %s starting: %s", leader.holder, intervals)
    try:
        scheduler.start()
    finally:
        leader.release()


if __name__ == "__main__":
    main()
