"""Exports through the API and a stub worker: content, progress, delivery, links."""

from __future__ import annotations

import csv
import io
import time

import pytest

from app.db import db
from app.exports import links, service
from app.jobs import outcomes
from app.jobs.writes import batched
from app.models import Email, Export
from tests.exports.conftest import as_csv_text


def _export(client, headers, fmt="csv"):
    response = client.post("/api/exports", json={"kind": "posts", "format": fmt}, headers=headers)
    assert response.status_code == 202, response.json
    return response.json


def _run(stub_broker, stub_worker):
    for queue in ("exports", "emails"):
        stub_broker.join(queue, fail_fast=True)
    stub_worker.join()


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]


def test_csv_export_succeeds_and_downloads_every_post(
    app, client, user, posts, stub_broker, stub_worker
):
    _, headers = user
    created = _export(client, headers)
    _run(stub_broker, stub_worker)

    export = client.get(f"/api/exports/{created['export_id']}", headers=headers).json
    assert export["status"] == "succeeded"
    assert (export["progress"], export["rows"]) == (100, len(posts))
    assert export["bytes"] > 0
    download = client.get(export["download_url"], headers=headers)
    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert [(int(i), body) for i, body, _ in _csv_rows(download.data)] == [
        (i, as_csv_text(body)) for i, body, _ in posts
    ]
    assert client.get(f"/api/jobs/{created['job_id']}", headers=headers).json["status"] == (
        "succeeded"
    )


def test_small_export_is_emailed_as_an_attachment(
    app, client, user, posts, stub_broker, stub_worker, smtp_server
):
    _, headers = user
    _export(client, headers, "json")
    _run(stub_broker, stub_worker)

    [message] = smtp_server.messages
    assert message["To"] == "alice@example.com"
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_filename().endswith(".json")
    assert "/exports/download/" not in message.get_payload()[0].get_payload(decode=True).decode()


def test_export_over_the_threshold_is_emailed_as_a_working_signed_link(
    app, client, user, posts, stub_broker, stub_worker, smtp_server
):
    app.config["EXPORT_ATTACH_MAX_BYTES"] = 10
    _, headers = user
    created = _export(client, headers)
    _run(stub_broker, stub_worker)

    [message] = smtp_server.messages
    assert not [part for part in message.walk() if part.get_filename()]
    text = message.get_payload(decode=True).decode()
    path = text[text.index("/exports/download/") :].split()[0]
    response = client.get(path)  # no credentials: the link is the key
    assert response.status_code == 200
    with app.app_context():
        assert len(response.data) == db.session.get(Export, created["export_id"]).bytes


def test_export_at_exactly_the_threshold_is_attached(
    app, client, user, posts, stub_broker, stub_worker, smtp_server
):
    # Given the size an export of these posts has
    _, headers = user
    first = _export(client, headers)
    _run(stub_broker, stub_worker)
    size = client.get(f"/api/exports/{first['export_id']}", headers=headers).json["bytes"]
    # When the threshold equals that size
    app.config["EXPORT_ATTACH_MAX_BYTES"] = size
    _export(client, headers)
    _run(stub_broker, stub_worker)
    # Then it is still an attachment
    assert all(
        [part for part in message.walk() if part.get_filename()] for message in smtp_server.messages
    )


def test_tampered_link_answers_404_and_expired_link_410(
    app, client, user, posts, stub_broker, stub_worker
):
    _, headers = user
    created = _export(client, headers)
    _run(stub_broker, stub_worker)
    with app.test_request_context():
        token = links.sign(created["export_id"])

    assert client.get(f"/exports/download/{token}").status_code == 200
    assert client.get(f"/exports/download/{token[:-2]}xx").status_code == 404
    assert client.get("/exports/download/not-a-token").status_code == 404
    app.config["EXPORT_LINK_TTL_S"] = 1
    time.sleep(2.1)  # itsdangerous counts whole seconds
    response = client.get(f"/exports/download/{token}")
    assert response.status_code == 410
    assert "expired" in response.json["error"]


def test_link_to_an_expired_export_answers_410(app, client, user, posts, stub_broker, stub_worker):
    _, headers = user
    created = _export(client, headers)
    _run(stub_broker, stub_worker)
    with app.app_context():
        db.session.get(Export, created["export_id"]).status = "expired"
        db.session.commit()
    with app.test_request_context():
        token = links.sign(created["export_id"])
    assert client.get(f"/exports/download/{token}").status_code == 410
    assert (
        client.get(f"/api/exports/{created['export_id']}/download", headers=headers).status_code
        == 410
    )


def test_second_export_of_the_same_kind_is_refused_with_the_running_job(
    app, client, user, stub_broker
):
    _, headers = user
    first = _export(client, headers, "csv")
    response = client.post(
        "/api/exports", json={"kind": "posts", "format": "xlsx"}, headers=headers
    )
    assert response.status_code == 409
    assert response.json["job_id"] == first["job_id"]
    with app.app_context():
        assert db.session.query(Export).count() == 1


def test_new_export_is_allowed_once_the_previous_one_finished(
    app, client, user, posts, stub_broker, stub_worker
):
    _, headers = user
    _export(client, headers)
    _run(stub_broker, stub_worker)
    _export(client, headers)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"kind": "posts", "format": "pdf"}, "format"),
        ({"kind": "users", "format": "csv"}, "kind"),
        ({"format": "csv"}, "kind"),
    ],
)
def test_bad_export_request_is_422_and_writes_nothing(app, client, user, stub_broker, body, field):
    _, headers = user
    response = client.post("/api/exports", json=body, headers=headers)
    assert response.status_code == 422
    assert field in response.json["fields"]
    with app.app_context():
        assert db.session.query(Export).count() == 0
    assert stub_broker.queues.get("exports") is None or stub_broker.queues["exports"].empty()


def test_another_users_export_answers_404(client, user, other_user, stub_broker):
    _, headers = user
    _, other_headers = other_user
    created = _export(client, headers)
    assert (
        client.get(f"/api/exports/{created['export_id']}", headers=other_headers).status_code == 404
    )
    assert (
        client.get(
            f"/api/exports/{created['export_id']}/download", headers=other_headers
        ).status_code
        == 404
    )


def test_download_before_the_export_is_done_answers_409(client, user, stub_broker):
    _, headers = user
    created = _export(client, headers)
    response = client.get(f"/api/exports/{created['export_id']}/download", headers=headers)
    assert response.status_code == 409


def test_export_that_already_succeeded_does_not_run_or_email_again(
    app, client, user, posts, stub_broker, stub_worker
):
    _, headers = user
    created = _export(client, headers)
    _run(stub_broker, stub_worker)
    with app.app_context():
        emails_before = db.session.query(Email).count()
        # When its message is delivered again (the worker died before acknowledging)
        service.run(created["export_id"])
        assert db.session.query(Email).count() == emails_before


def test_progress_is_reported_while_rows_are_written(
    app, client, user, posts, stub_broker, stub_worker, monkeypatch
):
    seen = []
    monkeypatch.setattr(service, "BATCH_ROWS", 5)
    monkeypatch.setattr(service, "PROGRESS_INTERVAL_S", 0)
    real = outcomes.set_progress

    def spy(requests):
        seen.extend(request.percent for request in requests)
        return real.many(requests)

    monkeypatch.setattr(outcomes, "set_progress", batched(spy))
    _, headers = user
    _export(client, headers)
    _run(stub_broker, stub_worker)
    assert seen == sorted(seen)
    assert len(seen) >= 5
    assert 0 < seen[0] < seen[-1] < 100
