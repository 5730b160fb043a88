"""A scheduler that starts while its database is read-only (a failover in
progress) or briefly unreachable waits it out and then runs its ticks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func

from app.db import db
from app.models import Job, ScheduleState
from tests.support.audit import audit
from tests.support.services import POSTGRES_ADMIN_URL
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

READ_ONLY_S = 4


def _set_read_only(database: str, read_only: bool) -> None:
    """New sessions of ``database`` are read-only (or not); its open ones are ended."""
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        if read_only:
            admin.execute(f"ALTER DATABASE {database} SET default_transaction_read_only = on")
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            )
        else:
            admin.execute(f"ALTER DATABASE {database} RESET default_transaction_read_only")


def _writable_once_refused(log: Path, database: str) -> None:
    """Make the database writable again once the scheduler logged that it is
    not, and READ_ONLY_S later (or after a minute: the assertion says why)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if log.exists() and "database not writable yet" in log.read_text(errors="replace"):
            time.sleep(READ_ONLY_S)
            break
        time.sleep(0.1)
    _set_read_only(database, False)


def _jobs_of(app, actor: str) -> int:
    with app.app_context():
        return db.session.scalar(db.select(func.count()).where(Job.actor == actor))


def _succeeded(app, actor: str) -> bool:
    with app.app_context():
        found = db.select(Job.id).where(Job.actor == actor, Job.status == "succeeded")
        return db.session.scalars(found).first() is not None


def _relay_outcome(app) -> str:
    with app.app_context():
        return db.session.get(ScheduleState, "relay").last_outcome or ""


def test_scheduler_started_on_a_read_only_database_waits_then_enqueues_its_ticks(
    live_app, postgres, start_scheduler, start_worker, smtp_server, tmp_path
):
    # Given a database that is read-only, with its sessions ended, until the
    # scheduler has met it (however long its start takes under load)
    _set_read_only(postgres.name, True)
    writable = threading.Thread(
        target=_writable_once_refused, args=(tmp_path / "scheduler-0.log", postgres.name)
    )
    writable.start()
    try:
        # When a scheduler starts meanwhile (it logs "starting" once its rows exist)
        scheduler = start_scheduler(
            RESEND_INTERVAL_S="3", CLEANUP_INTERVAL_S="3", SCHEDULER_LEASE_S="2"
        )
    finally:
        writable.join()
    with live_app.app_context():
        db.engine.dispose()  # the test's own connections were ended too

    # Then it waited instead of crashing, and now enqueues its ticks
    log = scheduler.log_path.read_text(errors="replace")
    assert "database not writable yet" in log, log
    assert scheduler.process.poll() is None
    start_worker()
    wait_until(
        lambda: _jobs_of(live_app, "resend_failed_emails") >= 2,
        timeout=30,
        message="two ticks of resend_failed_emails",
    )
    wait_until(lambda: _jobs_of(live_app, "cleanup") >= 2, timeout=30, message="cleanup ticks")
    wait_until(lambda: _relay_outcome(live_app).startswith("ok"), message="a relay tick")
    assert scheduler.process.poll() is None
    wait_until(lambda: _succeeded(live_app, "resend_failed_emails"), message="a tick's job run")
    audit(live_app, smtp_server)
