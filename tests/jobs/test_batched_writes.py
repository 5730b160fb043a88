"""A write and its batch form give the same rows (app/jobs/writes.py): the
worker's claims and outcomes, run as one batch and one request at a time."""

from __future__ import annotations

from datetime import timedelta

from app.db import db, utcnow
from app.emails import SEND_EMAIL
from app.jobs import attempts, outcomes, state
from app.jobs.attempts import StartAttempt
from app.jobs.outcomes import Outcome
from app.models import Job, Worker
from app.states import JobStatus


def _jobs(app) -> dict[str, str]:
    """One job in each situation a claim meets, by name."""
    with app.app_context():
        now = utcnow()
        for worker, expires in (("live", now + timedelta(minutes=1)), ("dead", now)):
            db.session.merge(
                Worker(
                    id=worker,
                    queues=["emails"],
                    started_at=now,
                    heartbeat_at=now,
                    expires_at=expires,
                    claimed={},
                )
            )
        jobs = {
            name: state.new_job(SEND_EMAIL, args=[name], max_retries=1)
            for name in (
                "queued",
                "retrying",
                "stale",
                "running_live",
                "running_dead",
                "spent",
                "finished",
            )
        }
        jobs["retrying"].status = JobStatus.RETRYING
        jobs["stale"].series = 1
        for name, worker, retries in (
            ("running_live", "live", 0),
            ("running_dead", "dead", 0),
            ("spent", "dead", 1),
        ):
            jobs[name].status, jobs[name].worker_id = JobStatus.RUNNING, worker
            jobs[name].attempts, jobs[name].retries, jobs[name].claim = 1, retries, "old"
        jobs["finished"].status = JobStatus.SUCCEEDED
        db.session.commit()
        return {name: job.id for name, job in jobs.items()}


def _requests(ids: dict[str, str]) -> list[StartAttempt]:
    """One claim per job (copies racing for one job are tests/jobs/test_attempts.py's)."""
    requests = [
        StartAttempt(
            job_id, series=0, worker_id="live", token=f"t-{name}", actor="send_email", args=[name]
        )
        for name, job_id in ids.items()
    ]
    requests.append(StartAttempt("missing", series=0, worker_id="live", token="t-missing"))
    requests.append(
        StartAttempt(
            ids["retrying"], series=0, worker_id="live", token="forged", actor="run_export"
        )
    )
    return requests


def _rows(app, ids: dict[str, str]) -> dict:
    with app.app_context():
        rows = {}
        for name, job_id in ids.items():
            job = db.session.get(Job, job_id)
            rows[name] = (
                job.status,
                job.attempts,
                job.retries,
                job.worker_id,
                job.claim,
                job.error_type,
                job.result,
                [(a.attempt, a.outcome, a.error_type) for a in job.history],
            )
        return rows


def _answer(result) -> object:
    if isinstance(result, Exception):
        return type(result)
    return None if result is None else (result.attempt, result.token, result.retries)


def _claim_both_ways(app):
    batch_ids, single_ids = _jobs(app), _jobs(app)
    with app.app_context():
        batch = attempts.start_attempt.many(_requests(batch_ids))
        db.session.commit()
        single = []
        for request in _requests(single_ids):
            single.extend(attempts.start_attempt.many([request]))
            db.session.commit()
    return batch_ids, single_ids, batch, single


def test_claims_in_one_batch_and_one_by_one_give_the_same_rows_and_answers(app):
    batch_ids, single_ids, batch, single = _claim_both_ways(app)

    assert [_answer(r) for r in batch] == [_answer(r) for r in single]
    assert _rows(app, batch_ids) == _rows(app, single_ids)
    assert _rows(app, batch_ids)["spent"][0] == "failed"  # WorkerLost, in both


def test_outcomes_in_one_batch_and_one_by_one_give_the_same_rows(app):
    batch_ids, single_ids, batch, single = _claim_both_ways(app)

    def outcomes_for(claims):
        live = [c for c in claims if isinstance(c, attempts.Claim)]
        ended = [
            Outcome.succeeded(live[0], {"n": 1}),
            Outcome.failed(live[1], RuntimeError("no")),
            Outcome(
                live[2],
                JobStatus.RETRYING,
                error=TimeoutError("later"),
                retry_at=utcnow() + timedelta(minutes=5),
            ),
        ]
        stale = attempts.Claim(
            live[0].job_id, "send_email", live[0].attempt, "not-mine", 0, 1, None
        )
        return [*ended, Outcome.succeeded(stale), Outcome.failed(stale, RuntimeError("late"))]

    with app.app_context():
        batch_answers = outcomes.record.many(outcomes_for(batch))
        db.session.commit()
        single_answers = []
        for outcome in outcomes_for(single):
            single_answers.extend(outcomes.record.many([outcome]))
            db.session.commit()

    assert batch_answers == single_answers == [True, True, True, False, False]
    assert _rows(app, batch_ids) == _rows(app, single_ids)
