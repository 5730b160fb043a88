"""Conditional transitions in app/jobs/state.py."""

from __future__ import annotations

import pytest

from app.db import db
from app.jobs import state
from app.models import Job


@pytest.fixture()
def job_id(app):
    with app.app_context():
        job = state.new_job(actor="send_email", queue="emails", args=["x"], max_retries=1)
        db.session.commit()
        return job.id


def test_running_job_is_not_started_again_by_a_duplicate_message(app, job_id):
    with app.app_context():
        assert state.start_attempt(job_id, redelivered=False) == 1
        assert state.start_attempt(job_id, redelivered=False) is None
        assert db.session.get(Job, job_id).attempts == 1


def test_redelivered_message_takes_over_a_running_job_and_closes_the_lost_attempt(app, job_id):
    # Given an attempt whose worker died (the job is left running)
    with app.app_context():
        assert state.start_attempt(job_id, redelivered=False) == 1
        # When RabbitMQ redelivers the message
        assert state.start_attempt(job_id, redelivered=True) == 2
        # Then the lost attempt is marked interrupted and a new one runs
        state.succeed(job_id, 2)
        job = db.session.get(Job, job_id)
        assert job.status == "succeeded"
        assert [(a.attempt, a.outcome) for a in job.history] == [
            (1, "interrupted"),
            (2, "succeeded"),
        ]


def test_unknown_job_raises_job_not_found(app):
    with app.app_context(), pytest.raises(state.JobNotFound):
        state.start_attempt("missing", redelivered=False)


def test_outcome_of_a_stale_attempt_does_not_overwrite_a_newer_one(app, job_id):
    with app.app_context():
        state.start_attempt(job_id, redelivered=False)
        state.start_attempt(job_id, redelivered=True)
        # The first attempt's late report must not move the job.
        state.fail_attempt(job_id, 1, RuntimeError("late"), retry_at=None)
        assert db.session.get(Job, job_id).status == "running"
