"""Repeated failed sign-ins are slowed down per client and per (account, client),
on the API and on the login page, without locking the owner out."""

from __future__ import annotations

import secrets
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from app import auth, login_throttle
from app.db import db, utcnow
from app.login_throttle import ACCOUNT, CLIENT, FREE_FAILURES, PAIR
from app.models import LoginThrottle, SignInBackoff
from tests.web.test_pages import csrf_token

BAD = {"email": "alice@example.com", "password": "wrong"}
GOOD = {"email": "alice@example.com", "password": "correct horse"}
STRANGER = {"REMOTE_ADDR": "198.51.100.66"}
OWNER = {"REMOTE_ADDR": "203.0.113.10"}
CHEAP_HASH = "scrypt:1024:8:1"


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch):
    """Passwords hashed with a small work factor: these tests count tries and
    hashes, not what one hash costs, and some make sixty of them."""
    monkeypatch.setattr(
        auth, "generate_password_hash", partial(generate_password_hash, method=CHEAP_HASH)
    )
    monkeypatch.setattr(
        auth, "_DUMMY_HASH", generate_password_hash("not a real password", method=CHEAP_HASH)
    )


@pytest.fixture()
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(login_throttle, "utcnow", clock)
    return clock


@pytest.fixture()
def hashes(monkeypatch):
    """Every password the sign-in hashed."""
    seen, real_check = [], auth.check_password_hash

    def counted(hashed, password):
        seen.append(password)
        return real_check(hashed, password)

    monkeypatch.setattr(auth, "check_password_hash", counted)
    return seen


def token(client, body, environ=None):
    return client.post("/api/tokens", json=body, environ_base=environ or {})


def random_email() -> str:
    return f"{secrets.token_hex(6)}@example.com"


def test_failures_beyond_the_free_ones_are_refused_even_with_the_right_password(client, user):
    for _ in range(FREE_FAILURES):
        assert client.post("/api/tokens", json=BAD).status_code == 401
    refused = client.post("/api/tokens", json=GOOD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1


def test_the_wait_passes_and_a_success_resets_the_count(app, client, user, clock):
    for _ in range(FREE_FAILURES):
        token(client, BAD)
    assert token(client, GOOD).status_code == 429
    clock.advance(seconds=PAIR.first.total_seconds())
    assert token(client, GOOD).status_code == 201
    # The count starts again: the free failures are free again
    for _ in range(FREE_FAILURES):
        assert token(client, BAD).status_code == 401


def test_the_wait_doubles_and_lifts_after_its_time(client, user, clock):
    # Given a client that used its free failures on an account
    for _ in range(FREE_FAILURES):
        token(client, BAD)
    waits = []
    for _ in range(4):
        # When it tries again at once, it is told how long to wait
        refused = token(client, BAD)
        assert refused.status_code == 429
        waits.append(int(refused.headers["Retry-After"]))
        # Then after that long one more try is let through (and fails)
        clock.advance(seconds=waits[-1] - 1)
        assert token(client, BAD).status_code == 429
        clock.advance(seconds=1)
        assert token(client, BAD).status_code == 401
    assert waits == [2, 4, 8, 16]
    # And after the window the failures are forgotten
    clock.advance(seconds=login_throttle.WINDOW.total_seconds() + 1)
    assert token(client, GOOD).status_code == 201


def test_login_page_is_throttled_too(client, user):
    for _ in range(FREE_FAILURES):
        client.post("/login", data={**BAD, "csrf_token": csrf_token(client)})
    response = client.post("/login", data={**GOOD, "csrf_token": csrf_token(client)})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_unknown_emails_are_throttled_like_known_ones(client):
    for _ in range(FREE_FAILURES):
        client.post("/api/tokens", json={"email": "nobody@example.com", "password": "x"})
    assert (
        client.post(
            "/api/tokens", json={"email": "nobody@example.com", "password": "x"}
        ).status_code
        == 429
    )


def test_the_try_is_counted_before_the_password_is_hashed_and_no_transaction_spans_it(
    app, client, user, monkeypatch
):
    seen = []
    real_check = auth.check_password_hash

    def check(hashed, password):
        # Another connection already sees the try counted: it was committed first.
        with db.engine.connect() as other:
            failures = other.execute(
                select(LoginThrottle.failures).where(LoginThrottle.email == "alice@example.com")
            ).scalar()
            counted = other.execute(select(func.sum(SignInBackoff.failures))).scalar()
        seen.append((failures, counted, db.session().in_transaction()))
        return real_check(hashed, password)

    monkeypatch.setattr(auth, "check_password_hash", check)

    response = client.post("/api/tokens", json=BAD)

    assert response.status_code == 401, response.get_json()
    assert seen == [(1, 2, False)]  # the account, and the client and its pair


@pytest.mark.parametrize("endpoint", ["api", "page"])
def test_a_new_address_on_every_try_is_throttled_by_client_and_costs_no_hash(
    client, hashes, endpoint
):
    # Given one client trying a new random address each time
    statuses = []
    for _ in range(CLIENT.free + 10):
        body = {"email": random_email(), "password": "guess"}
        if endpoint == "api":
            statuses.append(token(client, body, STRANGER).status_code)
        else:
            page = client.post(
                "/login",
                data={**body, "csrf_token": csrf_token(client)},
                environ_base=STRANGER,
            )
            statuses.append(page.status_code)

    # Then its free tries are answered 401, every later one 429, unhashed
    assert statuses == [401] * CLIENT.free + [429] * 10
    assert len(hashes) == CLIENT.free


def test_addresses_no_account_can_have_are_throttled_by_client_too(client, hashes):
    statuses = [
        client.post(
            "/login",
            data={
                "email": f"x\x00{n}@example.com",
                "password": "p",
                "csrf_token": csrf_token(client),
            },
            environ_base=STRANGER,
        ).status_code
        for n in range(CLIENT.free + 3)
    ]
    assert statuses[-3:] == [429] * 3
    assert len(hashes) == CLIENT.free


def test_the_hash_work_of_one_client_is_bounded_over_an_hour(client, hashes, clock):
    # Given an attacker that tries a new address every ten seconds for an hour
    for _ in range(360):
        token(client, {"email": random_email(), "password": "guess"}, STRANGER)
        clock.advance(seconds=10)
    # Then the free tries and one per doubled wait (2 s ... 15 min) were hashed
    assert CLIENT.free < len(hashes) <= CLIENT.free + 13


def test_a_spoofed_forwarded_for_from_an_untrusted_peer_counts_as_that_peer(client, hashes):
    for n in range(CLIENT.free + 3):
        token(
            client,
            {"email": random_email(), "password": "guess"},
            {**STRANGER, "HTTP_X_FORWARDED_FOR": f"10.9.8.{n}"},
        )
    assert len(hashes) == CLIENT.free


def test_behind_the_trusted_proxy_each_forwarded_client_counts_on_its_own(client, user):
    # Given a stranger behind nginx (REMOTE_ADDR 127.0.0.1) spraying addresses
    behind_nginx = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 198.51.100.66"}
    for _ in range(CLIENT.free + 2):
        token(client, {"email": random_email(), "password": "guess"}, behind_nginx)
    assert token(client, GOOD, behind_nginx).status_code == 429
    # Then the owner, behind the same nginx, is not held by it
    owner = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.10"}
    assert token(client, GOOD, owner).status_code == 201


def test_ipv6_clients_are_counted_by_their_64(client, hashes):
    for n in range(CLIENT.free + 3):
        token(
            client,
            {"email": random_email(), "password": "guess"},
            {"REMOTE_ADDR": f"2001:db8:1:2::{n + 1:x}"},
        )
    assert len(hashes) == CLIENT.free


def test_a_strangers_failures_do_not_lock_the_owner_out(client, user, hashes):
    # Given a stranger's 12 wrong tries on the owner's account
    statuses = [token(client, BAD, STRANGER).status_code for _ in range(12)]
    assert statuses == [401] * PAIR.free + [429] * (12 - PAIR.free)

    # When the owner signs in from their own client, on the API and the page
    assert token(client, GOOD, OWNER).status_code == 201
    page = client.post(
        "/login", data={**GOOD, "csrf_token": csrf_token(client)}, environ_base=OWNER
    )

    # Then both succeed, and the stranger is still held
    assert page.status_code == 302
    assert token(client, GOOD, STRANGER).status_code == 429


def test_successes_are_not_counted_against_the_client(client, user):
    for _ in range(CLIENT.free + 5):
        assert token(client, GOOD, OWNER).status_code == 201
    assert token(client, BAD, OWNER).status_code == 401


def test_a_known_device_signs_in_even_from_a_throttled_address(app, user):
    owner = app.test_client()
    # Given the owner's browser that signed in once (and got its device cookie)
    assert (
        owner.post(
            "/login", data={**GOOD, "csrf_token": csrf_token(owner)}, environ_base=OWNER
        ).status_code
        == 302
    )
    owner.post("/logout", data={"csrf_token": csrf_token(owner)}, environ_base=OWNER)
    # And a stranger on the same address (one NAT) who exhausted it and the account
    stranger = app.test_client()
    for _ in range(CLIENT.free + 3):
        token(stranger, {"email": random_email(), "password": "guess"}, OWNER)
    assert token(stranger, GOOD, OWNER).status_code == 429

    # When the owner signs in again from that browser
    page = owner.post("/login", data={**GOOD, "csrf_token": csrf_token(owner)}, environ_base=OWNER)

    # Then the address's failures did not hold it
    assert page.status_code == 302


def test_the_account_cap_slows_new_clients_but_never_a_known_device(app, user, clock):
    owner = app.test_client()
    assert (
        owner.post(
            "/login", data={**GOOD, "csrf_token": csrf_token(owner)}, environ_base=OWNER
        ).status_code
        == 302
    )
    # Given many clients' failures on the account, up to its cap
    stranger = app.test_client()
    for n in range(ACCOUNT.free):
        assert token(stranger, BAD, {"REMOTE_ADDR": f"192.0.2.{n + 1}"}).status_code == 401
    # Then a client new to the account waits (a little)...
    refused = token(stranger, GOOD, {"REMOTE_ADDR": "192.0.2.200"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) <= ACCOUNT.most.total_seconds()
    # ...while the owner's known browser signs in at once
    page = owner.post("/login", data={**GOOD, "csrf_token": csrf_token(owner)}, environ_base=OWNER)
    assert page.status_code == 302
    # And once the short wait has passed, a new client may try again
    clock.advance(seconds=int(refused.headers["Retry-After"]))
    assert token(stranger, GOOD, {"REMOTE_ADDR": "192.0.2.200"}).status_code == 201


def test_a_forged_device_cookie_counts_for_nothing(app, user):
    owner = app.test_client()
    owner.set_cookie("known_device", "forged.value.here")
    for _ in range(PAIR.free):
        token(owner, BAD, OWNER)
    page = owner.post("/login", data={**GOOD, "csrf_token": csrf_token(owner)}, environ_base=OWNER)
    assert page.status_code == 429


def test_prune_forgets_old_client_and_pair_counts(app, client, clock):
    token(client, {"email": random_email(), "password": "x"}, STRANGER)
    clock.advance(seconds=login_throttle.WINDOW.total_seconds() + 60)
    with app.app_context():
        assert login_throttle.prune() == 3  # the client, the pair and the account
        assert db.session.scalar(select(func.count()).select_from(SignInBackoff)) == 0
