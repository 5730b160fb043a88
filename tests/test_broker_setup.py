"""The broker is built from the app's configuration by the app factory
(app/jobs/broker.py); ``broker.py`` only hands it to the ``dramatiq`` command."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from dramatiq.middleware import TimeLimit
from flask import has_app_context

from app import create_app, rabbitmq
from app.db import db
from app.jobs import outbox, state
from app.jobs.broker import broker_of
from app.jobs.middleware import AppContext, JobState
from app.maintenance.cleanup import CLEANUP
from app.models import Job
from app.worker_metrics import WorkerMetrics
from tests.support.services import free_port

ROOT = Path(__file__).resolve().parents[1]


def _app(tmp_path, **config):
    return create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", **config})


def test_the_app_s_broker_runs_exactly_its_middleware_in_order(tmp_path):
    broker = broker_of(_app(tmp_path))

    # before_* hooks run in this order and after_* hooks in reverse: JobState's
    # both run inside the app context, and its after-hook after TimeLimit's.
    assert [type(m) for m in broker.middleware] == [AppContext, JobState, TimeLimit, WorkerMetrics]


def test_the_middleware_is_bound_to_the_app_that_built_the_broker(tmp_path):
    app = _app(tmp_path)
    app_context, job_state, *_ = broker_of(app).middleware

    assert app_context.app is app
    assert job_state.app_context is app_context


def test_each_app_builds_its_own_broker_from_its_configuration(tmp_path):
    stub = broker_of(_app(tmp_path, BROKER_URL="stub://"))
    classic = broker_of(_app(tmp_path, BROKER_URL="amqp://h1/", BROKER_QUEUE_TYPE="classic"))
    quorum = broker_of(
        _app(tmp_path, BROKER_URL="amqp://h1/", BROKER_QUEUE_TYPE="quorum", BROKER_DELIVERY_LIMIT=7)
    )

    assert type(stub) is rabbitmq.StubBroker
    assert type(classic) is rabbitmq.RabbitmqBroker
    assert type(quorum) is rabbitmq.QuorumRabbitmqBroker
    assert quorum.delivery_limit == 7


def test_job_state_hooks_run_inside_the_app_context_around_time_limit_s(
    app, stub_broker, stub_worker, monkeypatch
):
    # Given the hooks of JobState and TimeLimit, traced
    calls: list[tuple[str, str, bool]] = []

    def trace(cls, name):
        original = getattr(cls, name)

        def traced(self, *args, **kwargs):
            calls.append((cls.__name__, name, has_app_context()))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, traced)

    for cls in (JobState, TimeLimit):
        trace(cls, "before_process_message")
        trace(cls, "after_process_message")

    # When a worker runs a job
    with app.app_context():
        job = state.new_job(CLEANUP, args=[])
        outbox.commit_and_publish(job)
        job_id = job.id
    stub_broker.join(CLEANUP.queue)
    stub_worker.join()

    # Then JobState's hooks ran inside the app context, its after-hook last
    assert calls == [
        ("JobState", "before_process_message", True),
        ("TimeLimit", "before_process_message", True),
        ("TimeLimit", "after_process_message", True),
        ("JobState", "after_process_message", True),
    ]
    with app.app_context():
        assert db.session.get(Job, job_id).status == "succeeded"


def test_readyz_names_the_broker_when_rabbitmq_does_not_answer(tmp_path):
    app = _app(tmp_path, BROKER_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.get_json() == {"database": "ok", "broker": "error"}


class _Listener:
    """A port that counts the connections made to it, and answers none."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted += 1
            connection.close()

    def close(self):
        self.socket.close()


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_worker_s_modules_connects_to_neither_database_nor_broker():
    # Given a "PostgreSQL" and a "RabbitMQ" that count connections
    database, broker = _Listener(), _Listener()
    try:
        # When a process imports what the dramatiq command imports in each worker process
        done = _python(
            "import actors, broker, dramatiq; assert dramatiq.get_broker() is broker.broker",
            DATABASE_URL=f"postgresql+psycopg://nobody@127.0.0.1:{database.port}/jobs",
            BROKER_URL=f"amqp://guest:guest@127.0.0.1:{broker.port}/%2F",
        )

        # Then the broker is set up, and nothing connected to either
        assert done.returncode == 0, done.stderr
        assert (database.accepted, broker.accepted) == (0, 0)
    finally:
        database.close()
        broker.close()


def test_the_web_the_cli_and_the_scheduler_never_import_broker_py(tmp_path):
    done = _python(
        "import sys; from app import create_app; from app.cli import register_cli; "
        "import scheduler; create_app(); "
        "assert 'broker' not in sys.modules and 'actors' not in sys.modules, 'imported'",
        DATABASE_URL=f"sqlite:///{tmp_path / 'app.db'}",
    )

    assert done.returncode == 0, done.stderr


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("top_level", ["broker", "actors"])
def test_no_module_of_the_app_imports_the_worker_s_entry(top_level):
    importing = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "app").rglob("*.py"))
        if any(name == top_level or name.startswith(f"{top_level}.") for name in _imports(path))
    ]

    assert importing == []
