"""Reading job, email and export rows in tests of the real services."""

from __future__ import annotations

from app.db import db
from app.models import Email, Job


def send_emails(app, headers, count: int) -> list[dict]:
    """POST ``count`` emails through the API; their {job_id, email_id}."""
    client = app.test_client()
    sent = []
    for n in range(count):
        body = {"to": f"r{n}@example.com", "subject": f"Hello {n}", "body": "Hi"}
        response = client.post("/api/emails", json=body, headers=headers)
        assert response.status_code == 202, response.json
        sent.append(response.json)
    return sent


def statuses(app, job_ids) -> list[str]:
    """Each job's status, in the order of ``job_ids``; read in one query, since
    tests poll this for a thousand jobs at a time."""
    with app.app_context():
        found = dict(
            db.session.execute(db.select(Job.id, Job.status).where(Job.id.in_(job_ids))).all()
        )
    return [found[job_id] for job_id in job_ids]


def all_in(app, job_ids, *wanted: str) -> bool:
    return all(status in wanted for status in statuses(app, job_ids))


def every_job_is(app, status: str) -> bool:
    """True when every job but the periodic ones has ``status`` (an export's
    email job too)."""
    with app.app_context():
        statuses = db.session.scalars(db.select(Job.status).where(Job.queue != "maintenance"))
        return set(statuses) == {status}


def email_attempts(app, email_id: str) -> int:
    with app.app_context():
        return db.session.get(Email, email_id).attempts


def job(app, job_id: str) -> Job:
    with app.app_context():
        found = db.session.get(Job, job_id)
        found.history  # noqa: B018  (loaded before the session closes)
        db.session.expunge(found)
        return found


def wait_status(app, job_id: str, status: str, timeout: float = 40) -> None:
    from tests.support.worker import wait_until

    wait_until(lambda: job(app, job_id).status == status, timeout=timeout, message=status)


def outcomes(app, job_id: str) -> list[str]:
    """The outcome of each of the job's attempts, in order."""
    return [attempt.outcome for attempt in job(app, job_id).history]
