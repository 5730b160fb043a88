"""The job row follows what the worker does with its message (StubBroker, SQLite)."""

from __future__ import annotations

import dramatiq
import pytest

from app.db import db
from app.jobs import kinds, outbox, state
from app.jobs.kinds import JobKind
from app.models import Job

FLAKY = JobKind("flaky", "tests", time_limit_ms=60_000)
UNSTORABLE = JobKind("unstorable", "tests", time_limit_ms=60_000)


@pytest.fixture()
def flaky_actor(app, stub_broker):
    """An actor that fails its first ``failures`` calls, then succeeds."""
    calls = {"count": 0, "failures": 0}
    kinds.register(app, FLAKY)

    @dramatiq.actor(**FLAKY.actor_options())
    def flaky():
        calls["count"] += 1
        if calls["count"] <= calls["failures"]:
            raise ConnectionError(f"attempt {calls['count']} failed")

    yield calls
    del stub_broker.actors["flaky"]


def _enqueue(app, kind=FLAKY, max_retries=2) -> str:
    with app.app_context():
        job = state.new_job(kind, args=[], max_retries=max_retries)
        outbox.commit_and_publish(job)
        return job.id


def _job(app, job_id) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.history  # noqa: B018  (load it while the session is open)
        return job


def _drain(stub_broker, stub_worker, queue="tests"):
    stub_broker.join(queue, fail_fast=False)
    stub_worker.join()


def test_successful_job_is_succeeded_with_one_attempt(app, stub_broker, stub_worker, flaky_actor):
    job_id = _enqueue(app)
    _drain(stub_broker, stub_worker)

    job = _job(app, job_id)
    assert job.status == "succeeded"
    assert job.published_at is not None
    assert [(a.attempt, a.outcome) for a in job.history] == [(1, "succeeded")]


def test_failed_attempts_retry_then_succeed_keeping_each_error(
    app, stub_broker, stub_worker, flaky_actor
):
    flaky_actor["failures"] = 2
    job_id = _enqueue(app)
    _drain(stub_broker, stub_worker)

    job = _job(app, job_id)
    assert job.status == "succeeded"
    assert job.error_type is None
    outcomes = [(a.attempt, a.outcome, a.error_type) for a in job.history]
    assert outcomes == [
        (1, "failed", "ConnectionError"),
        (2, "failed", "ConnectionError"),
        (3, "succeeded", None),
    ]
    assert "attempt 1 failed" in job.history[0].traceback


def test_job_fails_when_retries_run_out_and_is_dead_lettered(
    app, stub_broker, stub_worker, flaky_actor
):
    flaky_actor["failures"] = 99
    job_id = _enqueue(app)
    _drain(stub_broker, stub_worker)

    job = _job(app, job_id)
    assert job.status == "failed"
    assert job.finished_at is not None
    assert (job.error_type, job.error_message) == ("ConnectionError", "attempt 3 failed")
    assert len(job.history) == 3  # the first attempt and max_retries=2 retries
    assert [m.message_id for m in stub_broker.dead_letters] == [job_id]


def test_message_without_a_job_row_is_dead_lettered_without_running(
    app, stub_broker, stub_worker, flaky_actor
):
    stub_broker.enqueue(
        dramatiq.Message(
            queue_name="tests",
            actor_name="flaky",
            args=(),
            kwargs={},
            options={},
            message_id="no-such-job",
        )
    )
    _drain(stub_broker, stub_worker)

    assert flaky_actor["count"] == 0
    assert [m.message_id for m in stub_broker.dead_letters] == ["no-such-job"]


def test_duplicate_message_of_a_finished_job_does_not_run_again(
    app, stub_broker, stub_worker, flaky_actor
):
    job_id = _enqueue(app)
    _drain(stub_broker, stub_worker)

    # When the same message arrives again (a second publish by the relay)
    with app.app_context():
        outbox.publish(outbox.message_for(db.session.get(Job, job_id)))
    _drain(stub_broker, stub_worker)

    assert flaky_actor["count"] == 1
    assert len(_job(app, job_id).history) == 1


def test_cancelled_job_is_skipped(app, stub_broker, stub_worker, flaky_actor):
    with app.app_context():
        job = state.new_job(FLAKY, args=[], max_retries=0)
        job.status = "cancelled"
        outbox.commit_and_publish(job)
        job_id = job.id
    _drain(stub_broker, stub_worker)

    assert flaky_actor["count"] == 0
    assert _job(app, job_id).status == "cancelled"


def test_a_worker_whose_writer_makes_no_progress_stops_renewing_its_lease(app, monkeypatch):
    from app.jobs import durable
    from app.jobs.workers import WorkerLease, WriterStalled

    lease = WorkerLease(app, ["emails"])
    lease.renew()
    assert lease.live()
    monkeypatch.setattr(durable, "stalled_for", lambda _app: 3600.0)
    with pytest.raises(WriterStalled):
        lease.renew()
    lease.stop()
    assert not lease.live()


@pytest.fixture()
def unstorable_actor(app, stub_broker):
    """An actor whose result no JSON column can hold."""
    kinds.register(app, UNSTORABLE)

    @dramatiq.actor(**UNSTORABLE.actor_options())
    def unstorable():
        return {"handle": object()}

    yield
    del stub_broker.actors["unstorable"]


def test_an_outcome_the_database_refuses_fails_the_job_and_says_why(
    app, stub_broker, stub_worker, unstorable_actor
):
    job_id = _enqueue(app, UNSTORABLE, max_retries=0)
    _drain(stub_broker, stub_worker)

    job = _job(app, job_id)
    assert (job.status, job.error_type) == ("failed", "OutcomeNotRecorded")
    assert [(a.outcome, a.error_type) for a in job.history] == [("failed", "OutcomeNotRecorded")]


def _refuse_claims(job_ids):
    raise ValueError("the claimed hook refused")


REFUSED = JobKind("refused", "tests", time_limit_ms=60_000, on_claimed=_refuse_claims)


def test_a_claim_the_database_refuses_fails_the_job_and_says_why(app, stub_broker, stub_worker):
    kinds.register(app, REFUSED)
    runs = []
    dramatiq.actor(**REFUSED.actor_options())(lambda: runs.append(1))
    job_id = _enqueue(app, REFUSED)
    _drain(stub_broker, stub_worker)
    del stub_broker.actors["refused"]

    job = _job(app, job_id)
    assert (job.status, job.error_type) == ("failed", "ClaimFailed")
    assert "the claimed hook refused" in job.error_message
    assert runs == []  # never run unclaimed


def test_a_message_whose_arguments_disagree_with_its_row_runs_nothing_and_is_dead_lettered(
    app, stub_broker, stub_worker, flaky_actor
):
    with app.app_context():
        job = state.new_job(FLAKY, args=[], max_retries=0)
        db.session.commit()
        forged = outbox.message_for(job).copy(args=("someone-elses-email",))
    stub_broker.enqueue(forged)
    _drain(stub_broker, stub_worker)

    assert flaky_actor["count"] == 0
    assert _job(app, job.id).status == "queued"  # left for its real message
    assert [m.message_id for m in stub_broker.dead_letters] == [job.id]


def test_a_message_naming_an_unknown_actor_fails_no_job_of_another_actor(
    app, stub_broker, stub_worker, flaky_actor
):
    with app.app_context():
        job = state.new_job(FLAKY, args=[], max_retries=0)
        db.session.commit()
        forged = outbox.message_for(job).copy(actor_name="no_such_actor")
    stub_broker.enqueue(forged)
    _drain(stub_broker, stub_worker)

    assert _job(app, job.id).status == "queued"
