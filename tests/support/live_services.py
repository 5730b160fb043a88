"""Fixtures for tests on the real services (``tests/integration``, ``tests/faults``):
a RabbitMQ vhost, a PostgreSQL database, a real SMTP server and real worker and
scheduler processes, each of the test's own. Loaded by ``tests/conftest.py``."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from flask_migrate import upgrade

from app import auth, create_app
from app.db import db
from app.jobs.broker import broker_of, init_app
from app.jobs.middleware import stack
from app.rabbitmq import AppBroker
from tests.support.scheduler import SchedulerProcess
from tests.support.services import PostgresDatabase, RabbitVhost
from tests.support.worker import WorkerProcess


@pytest.fixture(scope="session")
def pg_template():
    """A database migrated with Alembic once per session; tests copy it."""
    template = PostgresDatabase()
    app = create_app({"DATABASE_URL": template.url()})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    yield template.name
    template.drop()


@pytest.fixture()
def postgres(pg_template):
    database = PostgresDatabase(template=pg_template)
    yield database
    database.drop()


@pytest.fixture(scope="session")
def vhost_deletions():
    """Vhosts being deleted while later tests run (nothing waits on a test's
    vhost being gone); each deletion is waited for and checked at the end."""
    deletions: list[tuple[str, subprocess.Popen]] = []
    yield deletions
    failed = []
    for name, process in deletions:
        output, _ = process.communicate(timeout=120)
        if process.returncode != 0:
            failed.append(f"{name}: {output.decode(errors='replace')}")
    assert not failed, f"vhosts not deleted: {failed}"


@pytest.fixture(scope="session")
def vhost_supply(vhost_deletions):
    """Vhosts made one ahead, in a thread of their own: making one takes two
    runs of rabbitmqctl (a second or more), made while the test before runs.
    (RabbitMQ missing: ``RabbitVhost`` skips or fails the test that takes it.)"""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vhost-supply") as executor:
        ahead = []

        def take() -> RabbitVhost:
            made = ahead.pop() if ahead else executor.submit(RabbitVhost)
            ahead.append(executor.submit(RabbitVhost))
            return made.result()

        yield take
        for spare in ahead:
            if spare.exception() is None:
                vhost_deletions.append((spare.result().name, spare.result().start_deleting()))


@pytest.fixture()
def vhost(vhost_supply, vhost_deletions):
    vhost = vhost_supply()
    yield vhost
    vhost_deletions.append((vhost.name, vhost.start_deleting()))


def publish_to(app: Flask, **settings) -> AppBroker:
    """Rebuild ``app``'s broker as its factory builds it, from its configuration
    with ``settings`` (``BROKER_URL=...``) changed: the app then publishes there."""
    app.config.update(settings)
    init_app(app, stack(app))
    return broker_of(app)


@pytest.fixture()
def rabbit_broker(live_app, vhost):
    """The test's app publishes to the test's vhost, as the web would."""
    broker = publish_to(live_app, BROKER_URL=vhost.url())
    yield broker
    broker.close()


@pytest.fixture()
def live_app(postgres, smtp_server, tmp_path):
    app = create_app(
        {
            "TESTING": True,
            "MAIL_SUPPRESS_SEND": False,
            "DATABASE_URL": postgres.url(),
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": smtp_server.port,
            "EXPORT_DIR": str(tmp_path / "exports"),
        }
    )
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture()
def worker_env(live_app, vhost, smtp_server):
    return {
        "DATABASE_URL": live_app.config["DATABASE_URL"],
        "BROKER_URL": vhost.url(),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_server.port),
        "EXPORT_DIR": live_app.config["EXPORT_DIR"],
        "SECRET_KEY": live_app.config["SECRET_KEY"],
        "RETRY_MIN_BACKOFF_MS": "100",
        "RETRY_MAX_BACKOFF_MS": "500",
    }


@pytest.fixture()
def start_scheduler(worker_env, tmp_path):
    """Start scheduler processes (relay every second); killed afterwards."""
    schedulers: list[SchedulerProcess] = []

    def start(**env: str) -> SchedulerProcess:
        log = tmp_path / f"scheduler-{len(schedulers)}.log"
        process = SchedulerProcess({**worker_env, "RELAY_INTERVAL_S": "1", **env}, log)
        schedulers.append(process)
        return process

    yield start
    for process in schedulers:
        process.discard()


@pytest.fixture()
def start_worker(worker_env, tmp_path):
    """Start worker processes; every one still running is killed afterwards."""
    workers: list[WorkerProcess] = []

    def start(
        *extra_modules: str,
        threads: int = 2,
        args: tuple[str, ...] = (),
        wait_ready: bool = True,
        **env: str,
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = WorkerProcess(
            {**worker_env, **env},
            log,
            *extra_modules,
            threads=threads,
            args=args,
            wait_ready=wait_ready,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.discard()


@pytest.fixture()
def user_and_admin_headers(live_app):
    """Bearer headers of an ordinary user and of an admin."""
    with live_app.app_context():
        user = auth.create_user("lee@example.com", "pw")
        admin = auth.create_user("root@example.com", "pw", admin=True)
        return (
            {"Authorization": f"Bearer {auth.issue_token(user)}"},
            {"Authorization": f"Bearer {auth.issue_token(admin)}"},
        )
