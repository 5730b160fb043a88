"""``flask --app app ...`` commands."""

from __future__ import annotations

import pytest

from app.db import db
from app.emails import SEND_EMAIL
from app.exports.service import RUN_EXPORT
from app.jobs import state
from app.models import Post, User

PASSWORD = "a long enough password"


def test_users_create_makes_an_admin_and_refuses_a_duplicate(app):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["users", "create", "Ivy@Example.com", "--password", PASSWORD, "--admin"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(db.select(User))
        assert (user.email, user.is_admin) == ("ivy@example.com", True)
        assert user.password_hash != PASSWORD
    again = runner.invoke(args=["users", "create", "ivy@example.com", "--password", PASSWORD])
    assert again.exit_code != 0
    assert "already exists" in again.output


@pytest.mark.parametrize(
    ("email", "password", "complaint"),
    [
        pytest.param("notanemail", PASSWORD, "not a valid email address", id="bad-address"),
        pytest.param("not-an-address", PASSWORD, "not a valid email address", id="no-at-sign"),
        pytest.param("ivy@", PASSWORD, "not a valid email address", id="no-domain"),
        pytest.param("@example.com", PASSWORD, "not a valid email address", id="no-local-part"),
        pytest.param("ivy smith@example.com", PASSWORD, "not a valid email", id="space-before"),
        pytest.param("ivy@exam ple.com", PASSWORD, "not a valid email address", id="space-after"),
        pytest.param("ivy@host.invalid", PASSWORD, "not a valid email", id="reserved-invalid"),
        pytest.param("ivy@example.com", "p", "at least 10 characters", id="one-char-password"),
        pytest.param("ivy@example.com", "", "at least 10 characters", id="empty-password"),
    ],
)
def test_users_create_refuses_a_bad_address_or_short_password(app, email, password, complaint):
    result = app.test_cli_runner().invoke(args=["users", "create", email, "--password", password])
    assert result.exit_code != 0
    assert complaint in result.output
    with app.app_context():
        assert db.session.scalar(db.select(User)) is None


@pytest.mark.parametrize(
    "email",
    ["ivy@corp.test", "ops@intranet.local", "dev@box.localhost", "root@localhost", "ops@intranet"],
)
def test_users_create_takes_addresses_of_internal_sites(app, email):
    # When an operator creates an account on a reserved, internal domain
    result = app.test_cli_runner().invoke(args=["users", "create", email, "--password", PASSWORD])

    # Then it exists, and its owner can sign in with it
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(db.select(User.email)) == email
    signed_in = app.test_client().post("/api/tokens", json={"email": email, "password": PASSWORD})
    assert signed_in.status_code == 201, signed_in.json


def test_seed_posts_inserts_n_posts_for_the_user(app, user):
    result = app.test_cli_runner().invoke(args=["seed-posts", "alice@example.com", "2500"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.query(Post).filter_by(user_id=user[0]).count() == 2500


def test_seed_posts_for_an_unknown_user_fails_clearly(app):
    result = app.test_cli_runner().invoke(args=["seed-posts", "nobody@example.com", "5"])
    assert result.exit_code != 0
    assert "no user" in result.output


def test_jobs_list_shows_newest_first_and_filters(app):
    with app.app_context():
        first = state.new_job(SEND_EMAIL, args=[], max_retries=0)
        db.session.commit()
        second = state.new_job(RUN_EXPORT, args=[], max_retries=0)
        db.session.commit()
        first_id, second_id = first.id, second.id
    runner = app.test_cli_runner()
    lines = runner.invoke(args=["jobs", "list"]).output.splitlines()
    assert [line.split()[0] for line in lines] == [second_id, first_id]
    only_exports = runner.invoke(args=["jobs", "list", "--actor", "run_export"]).output
    assert first_id not in only_exports and second_id in only_exports
    bad = runner.invoke(args=["jobs", "list", "--status", "bogus"])
    assert bad.exit_code != 0


def test_jobs_list_says_so_when_no_job_matches(app):
    runner = app.test_cli_runner()
    empty = runner.invoke(args=["jobs", "list"])
    assert (empty.exit_code, empty.stdout) == (0, "No jobs match.\n")
    with app.app_context():
        state.new_job(SEND_EMAIL, args=[], max_retries=0)
        db.session.commit()
    filtered = runner.invoke(args=["jobs", "list", "--status", "failed"])
    assert (filtered.exit_code, filtered.stdout) == (0, "No jobs match.\n")
    assert "No jobs match." not in runner.invoke(args=["jobs", "list"]).output


def test_jobs_list_passes_no_terminal_escape_codes(app):
    with app.app_context():
        job = state.new_job(SEND_EMAIL, args=[], max_retries=0)
        job.status, job.error_type = "failed", "SMTPTemporaryError"
        job.error_message = "451 \x1b]0;owned\x07\x1b[2J gone\nsecond line"
        db.session.commit()
    output = app.test_cli_runner().invoke(args=["jobs", "list"]).output

    assert "\x1b" not in output and "\x07" not in output
    assert len(output.splitlines()) == 1 and "451 ?]0;owned??[2J gone?second line" in output


@pytest.mark.parametrize(
    "look_alike",
    ["ｉｖｙ@example.com", "IVY@EXAMPLE.COM", "ivy@EXAMPLE.com"],
)
def test_users_create_refuses_a_look_alike_of_an_existing_address(app, look_alike):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(args=["users", "create", "ivy@example.com", "--password", PASSWORD]).exit_code
        == 0
    )
    again = runner.invoke(args=["users", "create", look_alike, "--password", PASSWORD])
    assert again.exit_code != 0 and "already exists" in again.output


def test_an_internationalised_domain_is_one_account_in_either_form(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["users", "create", "jo@Bücher.example", "--password", PASSWORD])
    assert first.exit_code == 0, first.output
    again = runner.invoke(
        args=["users", "create", "jo@xn--bcher-kva.example", "--password", PASSWORD]
    )
    assert again.exit_code != 0 and "already exists" in again.output
