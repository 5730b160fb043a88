"""Exports against the real PostgreSQL, RabbitMQ and worker processes."""

from __future__ import annotations

import threading

import pytest

from app import auth
from app.db import db
from app.models import Export
from app.seed import seed_posts

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]
POSTS = 2000


@pytest.fixture()
def owner(live_app):
    with live_app.app_context():
        user = auth.create_user("gina@example.com", "pw")
        seed_posts(user.id, POSTS)
        return {"Authorization": f"Bearer {auth.issue_token(user)}"}


def test_two_simultaneous_requests_get_one_export_and_one_409(live_app, owner, stub_broker):
    barrier = threading.Barrier(2)
    answers = []

    def request(fmt):
        client = live_app.test_client()
        barrier.wait()
        response = client.post("/api/exports", json={"kind": "posts", "format": fmt}, headers=owner)
        answers.append((response.status_code, response.json))

    threads = [threading.Thread(target=request, args=(fmt,)) for fmt in ("csv", "json")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [202, 409]
    accepted = next(body for status, body in answers if status == 202)
    refused = next(body for status, body in answers if status == 409)
    assert refused["job_id"] == accepted["job_id"]
    with live_app.app_context():
        assert db.session.query(Export).count() == 1
