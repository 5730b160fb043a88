"""Shared fixtures. Unit tests: SQLite and the StubBroker. Integration tests
(``tests/integration``) bring the real RabbitMQ, PostgreSQL and SMTP server."""

from __future__ import annotations

import os

# Before any app is created (importing broker.py creates one): unit tests' apps
# build the StubBroker, and retry with short backoffs.
os.environ["BROKER_URL"] = "stub://"
os.environ.setdefault("RETRY_MIN_BACKOFF_MS", "10")
os.environ.setdefault("RETRY_MAX_BACKOFF_MS", "50")
os.environ.setdefault("SECRET_KEY", "test-secret-" + "x" * 32)

import dramatiq
import pytest

import actors  # noqa: F401  (declares the actors on the process's broker, as a worker does)
import broker as broker_module
from app import auth, create_app
from app.db import db
from app.jobs.broker import broker_of
from tests.support.smtp import SmtpServer

pytest_plugins = ["tests.support.live_services"]


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's, when it runs the tests
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadscope":
        from tests.support.parallel import Scheduling

        return Scheduling(config, log)
    return None


@pytest.fixture()
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture()
def app(tmp_path, smtp_server):
    app = create_app(
        {
            "TESTING": True,
            "MAIL_SUPPRESS_SEND": False,  # TESTING would suppress it; tests use a real SMTP server
            "DATABASE_URL": f"sqlite:///{tmp_path / 'test.db'}",
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": smtp_server.port,
            "EXPORT_DIR": str(tmp_path / "exports"),
        }
    )
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def stub_broker(app):
    """The StubBroker the test's app built, with every actor declared on it.

    The actors were declared on the process's broker when ``actors`` was
    imported (by ``broker.py``, as in a worker); they are declared on this one
    too, so that a worker on it runs them. Messages are published by the app
    (``outbox``), never by an actor's ``send``, which would go to the other."""
    broker = broker_of(app)
    for actor in broker_module.broker.actors.values():
        broker.declare_actor(actor)
    dramatiq.set_broker(broker)
    yield broker
    broker.flush_all()
    dramatiq.set_broker(broker_module.broker)


@pytest.fixture()
def stub_worker(stub_broker):
    worker = dramatiq.Worker(stub_broker, worker_timeout=50, worker_threads=2)
    worker.start()
    yield worker
    worker.stop()
    # A stopped worker's middleware would still take new queues' consumers.
    stub_broker.middleware[:] = [
        m for m in stub_broker.middleware if getattr(m, "worker", None) is not worker
    ]


def _make_user(app, email: str, *, admin: bool = False):
    with app.app_context():
        user = auth.create_user(email, "correct horse", admin=admin)
        token = auth.issue_token(user)
        return user.id, {"Authorization": f"Bearer {token}"}


@pytest.fixture()
def user(app):
    """(user_id, auth headers) of an ordinary user."""
    return _make_user(app, "alice@example.com")


@pytest.fixture()
def other_user(app):
    return _make_user(app, "bob@example.com")


@pytest.fixture()
def admin(app):
    return _make_user(app, "admin@example.com", admin=True)
