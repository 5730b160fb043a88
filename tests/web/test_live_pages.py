"""The live page ``/`` through the test client: sizes people can read, rows written
so far while an export runs, and ``/exports.json``'s conditional answers (ETag,
If-None-Match, 304), on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from app import auth
from app.db import db, utcnow
from app.exports import service
from app.exports.writers import WRITERS
from app.models import Email, Export, Job
from app.web.filters import file_size
from tests.support.statements import Statements
from tests.web.test_pages import sign_in

PASSWORD = "correct horse"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def site(request):
    """(app, test client, user id, bearer headers) on each database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "live_app")
    with app.app_context():
        user = auth.create_user("alice@example.com", PASSWORD)
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
        user_id = user.id
    client = app.test_client()
    sign_in(client)
    return app, client, user_id, headers


def _set(app, model, row_id, **values):
    with app.app_context():
        db.session.execute(update(model).where(model.id == row_id).values(**values))
        db.session.commit()


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, ""),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (1536, "1.5 KB"),
        (11_244_466, "10.7 MB"),
        (1024**3 - 1, "1.0 GB"),  # never "1024.0 MB"
        (5 * 1024**4, "5.0 TB"),
    ],
)
def test_file_size_reads_as_people_do(size, shown):
    assert file_size(size) == shown


def test_sizes_on_the_page_are_human_readable_with_the_byte_count_in_a_title(site):
    app, client, user_id, headers = site
    created = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
    _set(app, Export, created.json["export_id"], status="succeeded", rows=3, bytes=11_244_466)

    html = client.get("/").get_data(as_text=True)

    assert re.search(r'<td data-field="bytes" title="11244466 bytes">10.7 MB</td>', html)
    assert "11244466</td>" not in html


def test_rows_written_so_far_show_on_the_page_while_the_export_runs(
    app, client, user, stub_broker, stub_worker, monkeypatch
):
    # Given a user with 40 posts, exported 5 rows a batch, progress written after each
    user_id, headers = user
    with app.app_context():
        from app.seed import seed_posts

        seed_posts(user_id, 40)
    monkeypatch.setattr(service, "BATCH_ROWS", 5)
    monkeypatch.setattr(service, "PROGRESS_INTERVAL_S", 0)
    sign_in(client)
    page = app.test_client()
    sign_in(page)
    seen: list[tuple[str, int | None]] = []
    write_json = WRITERS["json"]

    def watched(path, columns, batches):
        def watching():
            for batch in batches:
                [item] = page.get("/exports.json").json["items"]
                seen.append((item["status"], item["rows"]))
                yield batch

        write_json(path, columns, watching())

    monkeypatch.setitem(WRITERS, "json", watched)

    # When the export runs
    client.post("/api/exports", json={"kind": "posts", "format": "json"}, headers=headers)
    for queue in ("exports", "emails"):
        stub_broker.join(queue, fail_fast=True)
    stub_worker.join()

    # Then the page showed the rows written so far, batch after batch, while it ran
    assert [status for status, _ in seen] == ["running"] * 8
    assert [rows for _, rows in seen] == [None, 5, 10, 15, 20, 25, 30, 35]
    [item] = client.get("/exports.json").json["items"]
    assert (item["status"], item["rows"]) == ("succeeded", 40)


def test_exports_json_answers_304_for_its_etag_and_200_again_after_each_change(site):
    app, client, user_id, headers = site
    # Given an export the page shows, and its ETag
    created = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
    first = client.get("/exports.json")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('W/"')
    assert [item["id"] for item in first.json["items"]] == [created.json["export_id"]]
    assert first.json["emails"] == []

    # When nothing changed, then 304 without a body, with the same ETag
    unchanged = client.get("/exports.json", headers={"If-None-Match": etag})
    assert (unchanged.status_code, unchanged.data, unchanged.headers["ETag"]) == (304, b"", etag)

    # And every change the page would show answers 200 with a new ETag
    def changed(expect):
        nonlocal etag
        response = client.get("/exports.json", headers={"If-None-Match": etag})
        assert response.status_code == 200
        assert response.headers["ETag"] != etag
        assert expect(response.json), response.json
        etag = response.headers["ETag"]
        again = client.get("/exports.json", headers={"If-None-Match": etag})
        assert again.status_code == 304

    job_id, export_id = created.json["job_id"], created.json["export_id"]
    _set(app, Job, job_id, status="running", progress=40)
    _set(app, Export, export_id, status="running")
    changed(
        lambda body: (body["items"][0]["status"], body["items"][0]["progress"]) == ("running", 40)
    )
    _set(app, Export, export_id, rows=1200)
    changed(lambda body: body["items"][0]["rows"] == 1200)
    _set(app, Export, export_id, status="succeeded", bytes=5000)
    changed(lambda body: body["items"][0]["download_url"] is not None)

    email = client.post(
        "/api/emails", json={"to": "carol@example.com", "subject": "Hi", "body": "Hello"},
        headers=headers,
    ).json  # fmt: skip
    changed(lambda body: [e["status"] for e in body["emails"]] == ["queued"])
    _set(app, Job, email["job_id"], status="running", attempts=1)
    changed(lambda body: body["emails"][0]["status"] == "sending")
    _set(app, Email, email["email_id"], attempts=1)
    changed(lambda body: body["emails"][0]["attempts"] == 1)
    _set(app, Email, email["email_id"], sent_at=utcnow())
    changed(lambda body: body["emails"][0]["status"] == "sent" and body["emails"][0]["sent_at"])


def test_the_page_starts_with_the_version_its_rows_were_read_at(site):
    app, client, user_id, headers = site
    client.post("/api/exports", json={"kind": "posts", "format": "xlsx"}, headers=headers)

    html = client.get("/").get_data(as_text=True)
    [embedded] = re.findall(r'let etag = "W/\\"([0-9a-f]+)\\""', html)

    # Then the page's first poll is a 304 when nothing moved since it was rendered
    response = client.get("/exports.json", headers={"If-None-Match": f'W/"{embedded}"'})
    assert response.status_code == 304


def test_another_users_changes_leave_my_version_alone(site, request):
    app, client, user_id, headers = site
    with app.app_context():
        other = auth.create_user("bob@example.com", PASSWORD)
        other_headers = {"Authorization": f"Bearer {auth.issue_token(other)}"}
    etag = client.get("/exports.json").headers["ETag"]

    client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=other_headers)

    assert client.get("/exports.json", headers={"If-None-Match": etag}).status_code == 304


def test_an_unchanged_poll_reads_one_statement_beside_the_sign_in(site):
    app, client, user_id, headers = site
    for _ in range(3):
        client.post("/api/emails", json={"to": "c@example.com", "subject": "s", "body": "b"},
                    headers=headers)  # fmt: skip
    client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
    etag = client.get("/exports.json").headers["ETag"]
    with app.app_context():
        engine = db.engine
    with Statements(engine) as statements:
        assert client.get("/exports.json", headers={"If-None-Match": etag}).status_code == 304
    # Then it reads the signed-in user's row, then the version in one statement; no more
    reads = [s for s in statements.seen if s.split()[0].upper() != "BEGIN"]  # SQLite's own
    assert [s.split()[0].upper() for s in reads] == ["SELECT", "SELECT"]
    assert "FROM users" in reads[0]
    assert "FROM exports" in reads[1] and "FROM emails" in reads[1]
