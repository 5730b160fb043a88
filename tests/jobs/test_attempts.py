"""app/jobs/attempts.py: claims, leases, takeovers, and their group-commit forms."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from app.db import db, utcnow
from app.emails import SEND_EMAIL
from app.jobs import attempts, durable, outcomes, state
from app.jobs.outcomes import Outcome
from app.models import Job, JobAttempt, Worker
from tests.support.claims import claim, record_failure, record_success


@pytest.fixture()
def job_id(app):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["x"], max_retries=1)
        db.session.commit()
        return job.id


def _worker(app, worker_id: str, *, live: bool) -> None:
    with app.app_context():
        now = utcnow()
        expires = now + timedelta(minutes=1) if live else now - timedelta(seconds=1)
        db.session.merge(
            Worker(
                id=worker_id,
                queues=["emails"],
                started_at=now,
                heartbeat_at=now,
                expires_at=expires,
                claimed={},
            )
        )
        db.session.commit()


def test_a_job_running_under_a_live_lease_is_not_started_by_another_copy(app, job_id):
    # Given a job claimed by a worker whose lease is live
    _worker(app, "a", live=True)
    with app.app_context():
        assert claim(job_id, worker_id="a").attempt == 1
        # When copies of its message arrive, at this worker or another
        assert claim(job_id, worker_id="a") is None
        assert claim(job_id, worker_id="b") is None
        # Then the job still has one attempt, owned by the first claim
        job = db.session.get(Job, job_id)
        assert (job.status, job.attempts, job.worker_id) == ("running", 1, "a")


def test_a_job_whose_lease_expired_is_taken_over_once_and_the_lost_attempt_closed(app, job_id):
    # Given an attempt whose worker died (its lease expired)
    _worker(app, "dead", live=True)
    with app.app_context():
        first = claim(job_id, worker_id="dead")
    _worker(app, "dead", live=False)
    _worker(app, "b", live=True)
    with app.app_context():
        # When two copies of its message race for it
        second = claim(job_id, worker_id="b")
        third = claim(job_id, worker_id="c")
        # Then exactly one takes it over, and that counts as a retry
        assert (second.attempt, second.retries, third) == (2, 1, None)
        record_success(second)
        # and the dead worker's late report changes nothing
        record_failure(first, RuntimeError("late"), retry_at=None)
        job = db.session.get(Job, job_id)
        assert job.status == "succeeded"
        assert [(a.attempt, a.outcome) for a in job.history] == [
            (1, "interrupted"),
            (2, "succeeded"),
        ]


def test_a_job_whose_workers_keep_dying_fails_with_worker_lost_when_retries_run_out(app, job_id):
    # Given a job with one retry whose workers die twice (max_retries=1)
    with app.app_context():
        claim(job_id, worker_id="gone-1")  # no worker row: its lease is not live
        assert claim(job_id, worker_id="gone-2").attempt == 2
        # When a third copy arrives
        assert claim(job_id, worker_id="gone-3") is None
        # Then the job failed for good, with the reason
        job = db.session.get(Job, job_id)
        assert (job.status, job.error_type, job.retries) == ("failed", "WorkerLost", 2)
        assert [a.outcome for a in job.history] == ["interrupted", "interrupted", "failed"]


def test_a_claim_whose_commit_reply_was_lost_is_recognised_on_the_next_try(app, job_id):
    # Given a claim that was committed, though its caller never heard so
    _worker(app, "a", live=True)
    token = uuid.uuid4().hex
    with app.app_context():
        request = attempts.StartAttempt(job_id, series=0, worker_id="a", token=token)
        durable.write(attempts.start_attempt, request)
        # When the same write runs again with the same token
        again = durable.write(attempts.start_attempt, request)
        # Then it is the same claim, not a skip
        assert (again.attempt, again.token) == (1, token)


def test_unknown_job_raises_job_not_found(app):
    with app.app_context(), pytest.raises(state.JobNotFound):
        claim("missing")


def test_retry_counts_are_kept_in_the_row_and_reset_by_a_manual_retry(app, job_id):
    with app.app_context():
        first = claim(job_id)
        record_failure(first, RuntimeError("x"), retry_at=utcnow())
        assert db.session.get(Job, job_id).retries == 1
        second = claim(job_id)
        record_failure(second, RuntimeError("y"), retry_at=None)
        state.requeue([job_id], published_at=None)
        db.session.commit()
        job = db.session.get(Job, job_id)
        assert (job.status, job.retries, job.series) == ("queued", 0, 1)


def _new(app, **kw) -> str:
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=["x"], max_retries=1, **kw)
        db.session.commit()
        return job.id


def test_claims_in_one_group_commit_give_each_call_its_own_answer(app):
    # Given two queued jobs, one missing id, and two copies of one message
    _worker(app, "w", live=True)
    first, second = _new(app), _new(app)
    requests = [
        attempts.StartAttempt(job_id, series=0, worker_id="w", token=token)
        for job_id, token in ((first, "t1"), (second, "t2"), (second, "t3"), ("missing", "t4"))
    ]
    with app.app_context():
        # When they are claimed together
        outcomes = attempts.start_attempt.many(requests)
        db.session.commit()
        # Then each job is claimed once, the copy is skipped, the missing one named
        assert (outcomes[0].attempt, outcomes[0].token) == (1, "t1")
        assert sorted(o.token for o in outcomes[1:3] if o) in (["t2"], ["t3"])
        assert outcomes[1:3].count(None) == 1
        assert isinstance(outcomes[3], state.JobNotFound)
        assert [len(db.session.get(Job, j).history) for j in (first, second)] == [1, 1]


def test_successes_in_one_group_commit_leave_a_taken_over_job_alone(app):
    _worker(app, "w", live=True)
    mine, lost = _new(app), _new(app)
    with app.app_context():
        first = claim(mine, worker_id="w")
        stale = claim(lost, worker_id="w")
        db.session.execute(db.update(Job).where(Job.id == lost).values(claim="someone-else"))
        db.session.commit()
        outcomes.record.many([Outcome.succeeded(first, {"n": 1}), Outcome.succeeded(stale)])
        db.session.commit()
        assert (db.session.get(Job, mine).status, db.session.get(Job, mine).result) == (
            "succeeded",
            {"n": 1},
        )
        assert db.session.get(Job, lost).status == "running"


def test_an_attempt_that_succeeds_writes_no_attempt_row_and_is_in_the_history(app, job_id):
    # Given a job claimed by a live worker
    _worker(app, "a", live=True)
    with app.app_context():
        running = claim(job_id, worker_id="a")
        job = db.session.get(Job, job_id)
        # Then while it runs, its attempt is the job row's
        assert [(a.attempt, a.outcome, a.finished_at) for a in job.history] == [
            (1, "running", None)
        ]
        # When it succeeds
        record_success(running)
        db.session.expire_all()
        job = db.session.get(Job, job_id)
        # Then no attempt row was written, and the history still has the attempt
        assert db.session.scalars(db.select(JobAttempt)).all() == []
        [attempt] = job.history
        assert (attempt.attempt, attempt.outcome) == (1, "succeeded")
        assert (attempt.started_at, attempt.finished_at) == (job.started_at, job.finished_at)


def test_a_takeover_closes_an_attempt_row_left_open_by_an_earlier_version(app, job_id):
    # Given a running job whose attempt has a row of its own (claims once wrote
    # one), and whose worker died
    with app.app_context():
        first = claim(job_id, worker_id="gone")
        db.session.add(JobAttempt(job_id=job_id, attempt=first.attempt, started_at=utcnow()))
        db.session.commit()
    _worker(app, "b", live=True)
    with app.app_context():
        # When another worker takes it over and succeeds
        record_success(claim(job_id, worker_id="b"))
        db.session.expire_all()
        # Then that row is closed as interrupted, and no second row is written for it
        job = db.session.get(Job, job_id)
        assert [(a.attempt, a.outcome) for a in job.history] == [
            (1, "interrupted"),
            (2, "succeeded"),
        ]
