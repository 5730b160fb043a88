"""The worker's batched state writes keep one statement text whatever the
batch's size (app/list_params.py), on SQLite and on PostgreSQL: compiled once,
prepared by psycopg, and a batch of one costs what a batch of sixteen does."""

from __future__ import annotations

import uuid

import pytest

from app import create_app
from app.db import db
from app.emails import SEND_EMAIL
from app.jobs import attempts, outcomes, state
from app.jobs.outcomes import Outcome
from tests.support.statements import Statements


def _batch_texts(app, size: int) -> list[str]:
    """The statements a batch of ``size`` claims and then successes sends."""
    with app.app_context():
        jobs = [state.new_job(SEND_EMAIL, args=[f"e{n}"]) for n in range(size)]
        db.session.commit()
        requests = [attempts.StartAttempt(j.id, 0, "w", uuid.uuid4().hex) for j in jobs]
        db.session.rollback()
        with Statements(db.engine) as statements:
            claims = attempts.start_attempt.many(requests)
            assert all(isinstance(claim, attempts.Claim) for claim in claims)
            assert (
                outcomes.record.many([Outcome.succeeded(c, {"n": 1}) for c in claims])
                == [True] * size
            )
            db.session.commit()
        return [text for text in statements.seen if not text.startswith("BEGIN")]


def _assert_one_shape(app) -> None:
    one, many = _batch_texts(app, 1), _batch_texts(app, 7)
    assert one == many
    # a claim, the email's attempt count, a success and the email's sent_at
    assert [text.split()[0] for text in one] == ["UPDATE", "UPDATE", "UPDATE", "UPDATE"]


def test_batched_claims_and_successes_keep_their_statements_on_sqlite(app):
    _assert_one_shape(app)


@pytest.mark.postgres
def test_batched_claims_and_successes_keep_their_statements_on_postgresql(postgres):
    app = create_app({"DATABASE_URL": postgres.url()})
    try:
        _assert_one_shape(app)
    finally:
        with app.app_context():
            db.engine.dispose()
