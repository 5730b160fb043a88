"""The Procfile's four processes under honcho (as ``make run`` starts them), against
the real PostgreSQL and RabbitMQ: one email and one export go through them, and
Ctrl-C stops the worker once, cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from app import auth, create_app
from app.db import db
from tests.support.services import free_port
from tests.support.worker import ROOT, wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


class Honcho:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "deploy/honcho_run.py", "start", "-f", "Procfile"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> int:
        """Ctrl-C: the terminal signals honcho (its children run in sessions of their own)."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=90)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture()
def procfile(postgres, vhost, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": postgres.url(),
        "BROKER_URL": vhost.url(),
        "PORT": str(port),
        "MAIL_PORT": str(free_port()),
        "MAILSINK_DIR": str(tmp_path / "mail"),
        "EXPORT_DIR": str(tmp_path / "exports"),
        "SECRET_KEY": "procfile-test-" + "k" * 32,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "dramatiq_prom_host": "127.0.0.1",
        "dramatiq_prom_port": str(free_port()),
        "dramatiq_prom_db": str(tmp_path / "prometheus"),
    }
    (tmp_path / "prometheus").mkdir()
    honcho = Honcho(env, tmp_path / "honcho.log")
    try:
        yield honcho, f"http://127.0.0.1:{port}", tmp_path / "mail", postgres.url()
    finally:
        honcho.stop()


def _call(url: str, method: str = "GET", body=None, token: str | None = None):
    request = urllib.request.Request(url, method=method)
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, json.loads(answer.read() or b"null")


def _up(base: str) -> bool:
    try:
        return _call(f"{base}/healthz")[0] == 200
    except (urllib.error.URLError, ConnectionError):
        return False


def test_procfile_processes_deliver_an_email_and_an_export_and_stop_cleanly(procfile):
    honcho, base, mail_dir, database_url = procfile
    wait_until(lambda: _up(base), timeout=60, message=f"the web process:\n{honcho.output()}")
    wait_until(lambda: "Worker process is ready" in honcho.output(), timeout=60, message="worker")
    app = create_app({"DATABASE_URL": database_url})
    with app.app_context():
        token = auth.issue_token(auth.create_user("proc@example.com", "pw"))
        db.engine.dispose()
    for i in range(3):
        _call(f"{base}/api/posts", "POST", {"body": f"post {i}"}, token)

    # One email through web, RabbitMQ, worker and the mail sink
    status, email = _call(
        f"{base}/api/emails", "POST", {"to": "a@example.com", "subject": "s", "body": "b"}, token
    )
    assert status == 202
    wait_until(lambda: len(list(mail_dir.glob("*.eml"))) == 1, timeout=60, message="the email")

    # One export, which the worker writes and emails
    status, export = _call(f"{base}/api/exports", "POST", {"kind": "posts", "format": "csv"}, token)
    assert status == 202
    wait_until(
        lambda: (
            _call(f"{base}/api/exports/{export['export_id']}", token=token)[1]["status"]
            == "succeeded"
        ),
        timeout=60,
        message="the export",
    )
    assert _call(f"{base}/api/exports/{export['export_id']}", token=token)[1]["rows"] == 3
    wait_until(lambda: len(list(mail_dir.glob("*.eml"))) == 2, timeout=60, message="its email")

    # Ctrl-C: every process stops by itself, and the worker is signalled once
    assert honcho.interrupt() == 130
    output = honcho.output()
    assert "Killing worker process" not in output
    assert "sending SIGKILL" not in output
    assert "worker.1 stopped (rc=0)" in output
