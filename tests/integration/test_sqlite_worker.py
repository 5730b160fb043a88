"""The SQLite default holds up under the default worker: web and worker write at
once and no "database is locked" error appears."""

from __future__ import annotations

import pytest
from flask_migrate import upgrade

from app import auth, create_app
from app.db import db
from app.models import Job
from tests.support.worker import wait_until

pytestmark = pytest.mark.rabbitmq

EMAILS = 30


@pytest.fixture()
def sqlite_app(tmp_path, smtp_server, vhost):
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
            "BROKER_URL": vhost.url(),
            "MAIL_PORT": smtp_server.port,
        }
    )
    with app.app_context():
        upgrade()  # the Alembic migration, as `flask db upgrade` runs it
    yield app
    with app.app_context():
        db.engine.dispose()


def test_many_emails_on_sqlite_with_a_threaded_worker(sqlite_app, start_worker, smtp_server):
    worker = start_worker(DATABASE_URL=sqlite_app.config["DATABASE_URL"])
    with sqlite_app.app_context():
        token = auth.issue_token(auth.create_user("finn@example.com", "pw"))
    client = sqlite_app.test_client()
    for number in range(EMAILS):
        response = client.post(
            "/api/emails",
            json={"to": f"r{number}@example.com", "subject": f"#{number}", "body": "x"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 202

    def all_succeeded():
        with sqlite_app.app_context():
            statuses = db.session.scalars(db.select(Job.status)).all()
            return statuses.count("succeeded") == EMAILS

    wait_until(all_succeeded, timeout=60, message="every email job succeeded")
    assert len(smtp_server.messages) == EMAILS
    assert "database is locked" not in worker.log_path.read_text()
