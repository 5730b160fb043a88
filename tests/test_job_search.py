"""The admin's search (``app/job_search.py``) finds an email job by its email's
recipient and subject, wherever a search is asked for: ``GET /api/jobs?q=``,
``/admin/jobs``, ``/admin/emails`` and a bulk action's ``q``. On SQLite and on
a PostgreSQL database migrated by Alembic (where the trigram indexes answer),
through the Flask test client."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from app import auth, bulk_actions, create_app
from app.admin.blueprint import PAGE_SIZE
from app.db import db, utcnow
from app.email_queue import new_email
from app.models import Email, Job
from tests.admin.conftest import listed_ids, signed_in

ADMIN, USER = "admin@example.com", "alice@example.com"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def search_app(request, app):
    """The test's app on SQLite, or on a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield app
        return
    postgres = request.getfixturevalue("postgres")
    on_postgres = create_app({"TESTING": True, "DATABASE_URL": postgres.url()})
    yield on_postgres
    with on_postgres.app_context():
        db.engine.dispose()


@pytest.fixture()
def people(search_app):
    """Bearer headers of an admin and of an ordinary user, by role; and the user's id."""
    found = {}
    with search_app.app_context():
        for role, address, admin in (("admin", ADMIN, True), ("user", USER, False)):
            person = auth.create_user(address, "correct horse", admin=admin)
            found[role] = {"Authorization": f"Bearer {auth.issue_token(person)}"}
            found[f"{role}_id"] = person.id
    return found


_minutes = iter(range(10_000))


def email_job(app, user_id: int, to: str, subject: str, *, status="failed") -> tuple[str, str]:
    """An email and its ``send_email`` job in ``status`` (its error a 451);
    each one a minute newer than the last. Returns (email id, job id)."""
    with app.app_context():
        email, job = new_email(user_id=user_id, to=to, subject=subject, body="Hello")
        job.status = status
        job.created_at = email.created_at = utcnow() - timedelta(days=1, minutes=-next(_minutes))
        if status == "failed":
            job.error_type, job.error_message = "SMTPDataError", "451 4.3.0 mailbox busy"
        db.session.commit()
        return email.id, job.id


def api_search(client, headers, q: str) -> set[str]:
    response = client.get("/api/jobs", query_string={"q": q, "limit": 100}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


@pytest.fixture()
def mail(search_app, people):
    """Three failed email jobs and an export job whose argument holds an address."""
    user_id = people["user_id"]
    return {
        "alice": email_job(search_app, user_id, "Alice.Martin@example.net", "Invoice 1042")[1],
        "bob": email_job(search_app, user_id, "bob@example.org", "Welcome to jobsapp")[1],
        "carol": email_job(search_app, user_id, "carol@example.net", "Your INVOICE is ready")[1],
    }


# --- GET /api/jobs?q= -------------------------------------------------------------------------


def test_an_admin_finds_an_email_job_by_its_recipient(search_app, people, mail):
    client = search_app.test_client()

    assert api_search(client, people["admin"], "alice.martin@example.net") == {mail["alice"]}
    assert api_search(client, people["admin"], "BOB@EXAMPLE.ORG") == {mail["bob"]}


def test_the_subject_is_searched_ignoring_case(search_app, people, mail):
    client = search_app.test_client()

    assert api_search(client, people["admin"], "invoice") == {mail["alice"], mail["carol"]}
    assert api_search(client, people["admin"], "WELCOME to") == {mail["bob"]}


def test_part_of_an_address_finds_every_email_job_it_is_in(search_app, people, mail):
    client = search_app.test_client()

    assert api_search(client, people["admin"], "martin@") == {mail["alice"]}
    assert api_search(client, people["admin"], "example.net") == {mail["alice"], mail["carol"]}
    assert api_search(client, people["admin"], "dave@example") == set()


def test_like_wildcards_in_q_match_only_themselves(search_app, people):
    # Given subjects and addresses that a wildcard would also match
    user_id = people["user_id"]
    percent = email_job(search_app, user_id, "x@example.com", "50% off")[1]
    email_job(search_app, user_id, "y@example.com", "500 off")
    underscore = email_job(search_app, user_id, "a_b@example.com", "Hi")[1]
    email_job(search_app, user_id, "axb@example.com", "Hi")
    client = search_app.test_client()

    # Then % and _ in q are the characters themselves
    assert api_search(client, people["admin"], "50%") == {percent}
    assert api_search(client, people["admin"], "a_b@") == {underscore}
    assert api_search(client, people["admin"], "%") == {percent}


def test_the_search_still_finds_the_id_the_error_and_the_arguments(search_app, people, mail):
    client = search_app.test_client()
    with search_app.app_context():
        email_id = db.session.scalar(db.select(Email.id).where(Email.job_id == mail["bob"]))

    assert api_search(client, people["admin"], mail["bob"]) == {mail["bob"]}  # the job id
    assert api_search(client, people["admin"], email_id) == {mail["bob"]}  # its argument
    assert api_search(client, people["admin"], "MAILBOX busy") == set(mail.values())


def test_q_combines_with_the_other_filters_and_pages(search_app, people, mail):
    client = search_app.test_client()
    newer = email_job(
        search_app, people["user_id"], "dan@example.net", "Invoice 7", status="queued"
    )

    assert api_search(client, people["admin"], "invoice") == {
        mail["alice"],
        mail["carol"],
        newer[1],
    }
    found = client.get("/api/jobs?q=invoice&status=failed&limit=1", headers=people["admin"])
    assert [item["id"] for item in found.get_json()["items"]] == [mail["carol"]]
    cursor = found.get_json()["next_cursor"]
    rest = client.get(f"/api/jobs?q=invoice&status=failed&cursor={cursor}", headers=people["admin"])
    assert [item["id"] for item in rest.get_json()["items"]] == [mail["alice"]]
    assert rest.get_json()["next_cursor"] is None


def test_a_user_passing_q_is_refused_and_shown_nothing(search_app, people, mail):
    client = search_app.test_client()

    response = client.get("/api/jobs?q=alice", headers=people["user"])

    assert response.status_code == 403
    assert response.get_json() == {"error": "admins only"}
    # An empty q is no search, as for the other filters: the user's own jobs.
    own = client.get("/api/jobs?q=", headers=people["user"])
    assert {item["id"] for item in own.get_json()["items"]} == set(mail.values())


@pytest.mark.parametrize(
    "q", ["x" * 201, "line\nbreak", "nul\x00"], ids=["too-long", "line-break", "nul"]
)
def test_an_invalid_q_answers_422_naming_it(client, admin, q):
    response = client.get("/api/jobs", query_string={"q": q}, headers=admin[1])

    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["q"]


def test_the_openapi_document_shows_q_on_the_jobs_listing(client):
    spec = client.get("/openapi.json").get_json()
    listing = spec["paths"]["/api/jobs"]["get"]

    [q] = [p for p in listing["parameters"] if p["name"] == "q"]
    assert q["in"] == "query"
    assert q["schema"]["maxLength"] == 200
    assert "403" in listing["responses"]


# --- the admin pages ---------------------------------------------------------------------------


def test_the_admin_jobs_page_finds_an_email_job_by_recipient_and_subject(search_app, people, mail):
    client = signed_in(search_app, ADMIN)

    def search(q):
        return set(listed_ids(client.get("/admin/jobs", query_string={"q": q}).text))

    assert search("alice.martin@EXAMPLE.net") == {mail["alice"]}
    assert search("Invoice") == {mail["alice"], mail["carol"]}
    assert "recipient or subject" in client.get("/admin/jobs").text


def test_the_failed_emails_page_searches_recipient_subject_id_and_error(search_app, people):
    user_id = people["user_id"]
    alice, _ = email_job(search_app, user_id, "alice@example.net", "Invoice 1")
    bob, _ = email_job(search_app, user_id, "bob@example.org", "Welcome")
    email_job(search_app, user_id, "alice@example.org", "Invoice 2", status="succeeded")
    with search_app.app_context():  # another failure
        job = db.session.scalar(
            db.select(Job).join(Email, Email.job_id == Job.id).where(Email.id == bob)
        )
        job.error_type, job.error_message = "RecipientRefused", "550 5.1.1 No Such User"
        db.session.commit()
    client = signed_in(search_app, ADMIN)

    def search(q):
        return set(listed_ids(client.get("/admin/emails", query_string={"q": q}).text))

    assert search("ALICE@") == {alice}  # not the one that was sent
    assert search("invoice") == {alice}
    assert search(bob) == {bob}  # the email's id
    assert search("no such user") == {bob}  # its job's error
    assert search("mailbox busy") == {alice}
    assert search("100%") == set()
    html = client.get("/admin/emails", query_string={"q": "invoice"}).text
    assert re.search(r'<input type="search" name="q" value="invoice"', html)


def test_paging_the_failed_emails_page_keeps_the_search(search_app, people):
    # Given more matching failed emails than a page holds, among others
    user_id = people["user_id"]
    matching = {
        email_job(search_app, user_id, f"r{n}@example.net", "Invoice")[0]
        for n in range(PAGE_SIZE + 5)
    }
    for n in range(5):
        email_job(search_app, user_id, f"s{n}@example.org", "Welcome")
    client = signed_in(search_app, ADMIN)

    # When the Older links are followed from the first page of the search
    seen, url = [], "/admin/emails?q=invoice"
    while url:
        html = client.get(url).text
        seen += listed_ids(html)
        older = re.search(r'<a href="([^"]+)" id="older">', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert "q=invoice" in url and "cursor=" in url

    # Then every match is listed once, and nothing else
    assert len(seen) == len(set(seen)) == len(matching)
    assert set(seen) == matching


# --- bulk actions --------------------------------------------------------------------------------


def test_a_bulk_action_with_q_finds_the_same_jobs_by_recipient(search_app, people, mail):
    client = search_app.test_client()
    filters = bulk_actions.Filters(q="example.net")

    with search_app.app_context():
        matched = set(
            db.session.scalars(db.select(Job.id).where(*bulk_actions.matching("retry", filters)))
        )
        assert bulk_actions.count("retry", filters) == 2

    assert (
        matched
        == api_search(client, people["admin"], "example.net")
        == {mail["alice"], mail["carol"]}
    )
