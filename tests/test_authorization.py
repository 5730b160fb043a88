"""Who may do what: every endpoint and page × anonymous, the owner ("user"),
another user ("other") and an admin, with the status each must get.

``{email}``, ``{job}``, ``{failed_job}``, ``{export}``, ``{signed}`` and ``{queue}`` are the
user's own; the API authenticates with each role's bearer token, the pages with
each role's session (forms carry a CSRF token). Every route of the app is in
the table: a new one fails ``test_the_matrix_covers_every_route`` until added."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import email_queue
from app.db import db, utcnow
from app.emails import SEND_EMAIL
from app.exports import links
from app.jobs import outbox, state
from app.models import Export, Job

MATRIX = """
method  path                                  anonymous  user  other  admin
POST    /api/tokens                           401        201   201    201
DELETE  /api/tokens/current                   401        204   204    204
POST    /api/posts                            401        201   201    201
POST    /api/emails                           401        202   202    202
POST    /api/emails/batch                     401        202   202    202
GET     /api/emails/{email}                   401        200   404    200
POST    /api/exports                          401        202   202    202
GET     /api/exports/{export}                 401        200   404    200
GET     /api/exports/{export}/download        401        200   404    200
GET     /exports/download/{signed}            200        200   200    200
GET     /api/jobs                             401        200   200    200
GET     /api/jobs/{job}                       401        200   404    200
POST    /api/jobs/{failed_job}/retry          401        403   403    202
POST    /api/jobs/{job}/cancel                401        403   403    200
POST    /api/jobs/bulk                        401        403   403    202
GET     /api/errors                           401        403   403    200
GET     /api/audit                            401        403   403    200
GET     /api/queues                           401        403   403    200
POST    /api/queues/{queue}/pause             401        403   403    200
POST    /api/queues/{queue}/resume            401        403   403    200
GET     /healthz                              200        200   200    200
GET     /readyz                               200        200   200    200
GET     /metrics                              200        200   200    200
GET     /openapi.json                         200        200   200    200
GET     /login                                200        200   200    200
POST    /login                                401        302   302    302
POST    /logout                               302        302   302    302
GET     /                                     302        200   200    200
GET     /exports.json                         302        200   200    200
POST    /exports                              302        303   303    303
POST    /exports/{export}/cancel              302        303   404    404
GET     /exports/{export}/download            302        200   404    200
GET     /admin                                302        403   403    200
GET     /admin/jobs                           302        403   403    200
GET     /admin/jobs/{job}                     302        403   403    200
POST    /admin/jobs/{failed_job}/retry        302        403   403    303
POST    /admin/jobs/{job}/cancel              302        403   403    303
POST    /admin/jobs/{job}/run-now             302        403   403    303
POST    /admin/jobs/actions                   302        403   403    303
GET     /admin/emails                         302        403   403    200
POST    /admin/emails/resend                  302        403   403    303
GET     /admin/errors                         302        403   403    200
GET     /admin/audit                          302        403   403    200
GET     /admin/queues                         302        403   403    200
POST    /admin/queues/{queue}/pause           302        403   403    303
POST    /admin/queues/{queue}/resume          302        403   403    303
GET     /admin/schedules                      302        403   403    200
"""
ROLES = ("anonymous", "user", "other", "admin")
EMAILS = {"user": "alice@example.com", "other": "bob@example.com", "admin": "admin@example.com"}
PASSWORD = "correct horse"


def _rows():
    lines = [line.split() for line in MATRIX.strip().splitlines()[1:]]
    return [
        (method, path, dict(zip(ROLES, map(int, codes), strict=True)))
        for method, path, *codes in lines
    ]


@pytest.fixture()
def things(app, user, other_user, admin, stub_broker):
    """The user's email and its queued job, a failed job, a finished export."""
    with app.app_context():
        email, job = email_queue.new_email(
            user_id=user[0], to="x@example.com", subject="s", body="b"
        )
        outbox.commit_and_publish(job)
        failed = state.new_job(SEND_EMAIL, args=[], max_retries=0)
        failed.user_id, failed.status = user[0], "failed"
        export = Export(user_id=user[0], kind="posts", format="csv", status="succeeded")
        db.session.add(export)
        db.session.flush()
        export.file_name, export.finished_at, export.rows, export.bytes = (
            f"{export.id}.csv",
            utcnow(),
            0,
            3,
        )
        db.session.commit()
        directory = Path(app.config["EXPORT_DIR"])
        directory.mkdir(parents=True, exist_ok=True)
        (directory / export.file_name).write_text("id\n")
        with app.test_request_context():
            signed = links.sign(export.id)
        assert db.session.get(Job, failed.id) is not None
        return {
            "email": email.id,
            "job": job.id,
            "failed_job": failed.id,
            "export": export.id,
            "signed": signed,
            "queue": "emails",
        }


def _csrf(client) -> str:
    html = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


def _request(app, tokens, role: str, method: str, path: str):
    client = app.test_client()
    if path.startswith("/api/"):
        headers = {"Authorization": f"Bearer {tokens[role]}"} if role in tokens else {}
        body = {
            "/api/tokens": {"email": EMAILS.get(role, "nobody@example.com"), "password": PASSWORD},
            "/api/posts": {"body": "hello"},
            "/api/emails": {"to": "x@example.com", "subject": "s", "body": "b"},
            "/api/emails/batch": {
                "messages": [{"to": "x@example.com", "subject": "s", "body": "b"}]
            },
            "/api/exports": {"kind": "posts", "format": "json"},
            "/api/jobs/bulk": {"action": "retry"},
        }.get(path)
        return client.open(path, method=method, headers=headers, json=body)
    if role in EMAILS:
        signed_in = client.post(
            "/login",
            data={"email": EMAILS[role], "password": PASSWORD, "csrf_token": _csrf(client)},
        )
        assert signed_in.status_code == 302
    if method == "GET":
        return client.get(path)
    form = {"csrf_token": _csrf(client), "format": "csv", "action": "retry", "one": "x"}
    if path == "/login":
        form |= {"email": EMAILS.get(role, "nobody@example.com"), "password": PASSWORD}
    return client.post(path, data=form)


@pytest.mark.parametrize(
    ("method", "path", "expected"), [pytest.param(*row, id=f"{row[0]} {row[1]}") for row in _rows()]
)
def test_each_role_gets_the_status_in_the_matrix(
    app, user, other_user, admin, things, method, path, expected
):
    tokens = {
        "user": user[1]["Authorization"].split()[1],
        "other": other_user[1]["Authorization"].split()[1],
        "admin": admin[1]["Authorization"].split()[1],
    }
    got = {
        role: _request(app, tokens, role, method, path.format(**things)).status_code
        for role in ROLES
    }
    assert got == expected


def test_the_matrix_covers_every_route(app):
    covered = {(method, re.sub(r"\{\w+\}", "<>", path)) for method, path, _ in _rows()}
    routes = {
        (method, re.sub(r"<[^>]+>", "<>", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == covered
