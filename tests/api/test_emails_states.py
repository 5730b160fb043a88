"""POST /api/emails and /api/emails/batch answer each email's real state (the
contract's email states), on the real PostgreSQL: ``queued`` for one just
queued, and what it has become for a repeated Idempotency-Key."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from app import auth
from app.db import db, utcnow
from app.models import Email, Job
from tests.api.email_helpers import GOOD

pytestmark = pytest.mark.postgres


@pytest.fixture()
def api(live_app):
    with live_app.app_context():
        user = auth.create_user("lee@example.com", "a long enough password")
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
    return live_app.test_client(), headers


def _state(client, headers, email_id) -> str:
    return client.get(f"/api/emails/{email_id}", headers=headers).json["status"]


def test_a_queued_email_answers_queued_as_its_own_page_does(api):
    client, headers = api
    response = client.post("/api/emails", json=GOOD, headers=headers)
    assert response.status_code == 202
    assert response.json["status"] == "queued"
    assert _state(client, headers, response.json["email_id"]) == "queued"


def test_a_queued_batch_answers_queued_for_every_email(api):
    client, headers = api
    messages = [{**GOOD, "subject": f"Hello {n}"} for n in range(3)]
    response = client.post("/api/emails/batch", json={"messages": messages}, headers=headers)
    assert response.status_code == 202
    items = response.json["items"]
    assert [item["status"] for item in items] == ["queued"] * 3
    assert [_state(client, headers, item["email_id"]) for item in items] == ["queued"] * 3


def test_a_repeated_key_answers_what_the_email_has_become(live_app, api):
    client, headers = api
    key = {**headers, "Idempotency-Key": "report-7"}
    first = client.post("/api/emails", json=GOOD, headers=key).json
    assert first["status"] == "queued"

    # When a worker has started sending it, then sent it
    with live_app.app_context():
        db.session.execute(update(Job).where(Job.id == first["job_id"]).values(status="running"))
        db.session.commit()
    assert client.post("/api/emails", json=GOOD, headers=key).json["status"] == "sending"
    with live_app.app_context():
        db.session.execute(
            update(Email).where(Email.id == first["email_id"]).values(sent_at=utcnow())
        )
        db.session.commit()

    # Then the repeat answers the same email in its state now, as GET does
    again = client.post("/api/emails", json=GOOD, headers=key).json
    assert (again["email_id"], again["status"]) == (first["email_id"], "sent")
    assert _state(client, headers, first["email_id"]) == "sent"
