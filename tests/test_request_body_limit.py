"""The 1 MiB request limit holds for bodies without ``Content-Length`` (chunked),
as gunicorn hands them on: over it 413 in the contract's JSON shape, never the
body cut to 1 MiB and accepted. tests/deploy/test_gunicorn.py sends them raw."""

from __future__ import annotations

import io
import json

from app import MAX_REQUEST_BYTES
from app.db import db
from app.models import Post

CHUNKED = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}


def _chunked_post(client, path: str, body: bytes, headers: dict):
    """As gunicorn passes a chunked request: no length (the test client always
    computes one, so it is blanked), the stream ended by the server."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Content-Type": "application/json"},
        environ_overrides=CHUNKED,
    )


def test_a_chunked_body_over_the_limit_answers_413_and_stores_nothing(app, client, user):
    _, headers = user
    # Valid JSON for its first MiB: cut there, it would be accepted
    body = json.dumps({"body": "cut"}).encode() + b" " * MAX_REQUEST_BYTES

    response = _chunked_post(client, "/api/posts", body, headers)

    assert (response.status_code, response.get_json()) == (
        413,
        {"error": "request body over 1 MiB"},
    )
    with app.app_context():
        assert db.session.query(Post).count() == 0


def test_a_chunked_body_of_exactly_the_limit_is_read_whole(app, client, user):
    _, headers = user
    start = json.dumps({"body": "whole"}).encode()
    body = start + b" " * (MAX_REQUEST_BYTES - len(start))

    response = _chunked_post(client, "/api/posts", body, headers)

    assert response.status_code == 201
    assert response.get_json()["body"] == "whole"


def test_a_chunked_form_over_the_limit_answers_413_on_the_html_side(client):
    response = client.post(
        "/login",
        input_stream=io.BytesIO(b"email=a%40example.com&password=" + b"x" * MAX_REQUEST_BYTES),
        content_type="application/x-www-form-urlencoded",
        environ_overrides=CHUNKED,
    )

    assert response.status_code == 413
