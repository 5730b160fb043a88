"""The sign-in throttle holds against parallel guesses on PostgreSQL: as a
client's wait on an account ends, of 32 simultaneous wrong guesses from it
exactly one reaches the password check; the others wait (429)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from app import auth, login_throttle
from app.db import db, utcnow
from app.models import SignInBackoff

pytestmark = pytest.mark.postgres
GUESSES = 32


def test_parallel_guesses_as_a_lockout_ends_reach_the_password_check_once(live_app, monkeypatch):
    # Given a client held on an account (the test client's 127.0.0.1) whose wait has just ended
    failures = login_throttle.PAIR.free + 2
    with live_app.app_context():
        auth.create_user("alice@example.com", "correct horse")
        waited = login_throttle.PAIR.delay(failures) + timedelta(seconds=1)
        db.session.add(
            SignInBackoff(
                key=login_throttle._digest("pair", "alice@example.com", "127.0.0.1"),
                failures=failures,
                last_failure_at=utcnow() - waited,
            )
        )
        db.session.commit()
    checks, lock = [], threading.Lock()
    real_check = auth.check_password_hash

    def counted(hashed, password):
        with lock:
            checks.append(password)
        return real_check(hashed, password)

    monkeypatch.setattr(auth, "check_password_hash", counted)

    # When 32 wrong guesses arrive at once
    start, statuses = threading.Barrier(GUESSES), []

    def guess():
        client = live_app.test_client()
        start.wait()
        response = client.post(
            "/api/tokens", json={"email": "alice@example.com", "password": "wrong guess"}
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=guess) for _ in range(GUESSES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then one guess was checked (and failed); every other one was told to wait
    assert len(checks) == 1
    assert sorted(statuses) == [401] + [429] * (GUESSES - 1)
