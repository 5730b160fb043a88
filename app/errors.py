"""Errors as the API shapes them: JSON ``{error, fields?}`` with the right
status for the API, and 503 (never a hang or a 500) while the database is down."""

from __future__ import annotations

import io
import logging

from flask import Flask, jsonify, render_template, request
from sqlalchemy.exc import DataError, DBAPIError, OperationalError, TimeoutError
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wsgi import get_content_length

from app import text
from app.db import db

logger = logging.getLogger(__name__)

JSON_PREFIXES = (
    "/api/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/exports/download/",
    "/openapi.json",
)
# What the HTML side says for the errors it shows as pages of its own.
PAGE_TEXT = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    403: ("Not allowed", "Your account may not open this page."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This page does not take that kind of request."),
    410: ("Gone", "This has expired or been cleaned up."),
    413: ("Too large", "The request was over 1 MiB."),
    422: ("Bad request", "A value in the address could not be used."),
    429: ("Slow down", "Too many requests. Wait a little and try again."),
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        fields: dict | None = None,
        *,
        headers: dict | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields
        self.headers = headers or {}
        self.extra = extra


def error_response(status: int, message: str, fields: dict | None = None, **extra):
    body = {"error": message, **extra}
    if fields:
        body["fields"] = fields
    return jsonify(body), status


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.is_json


def _discard_session() -> None:
    try:
        db.session.rollback()
    except Exception:  # the connection is gone; the pool will replace it
        logger.debug("rollback failed", exc_info=True)


def _page(status: int):
    title, message = PAGE_TEXT.get(status, ("Error", "Something went wrong."))
    return render_template("web/error.html", status=status, title=title, message=message), status


def refuse_hostile_urls() -> None:
    """No path or query value with a NUL, control or line-separator character
    reaches a view (nor the database, which could not store it): 404 for a
    path, 422 for a query value."""
    if not text.single_line(request.path):
        raise ApiError(404, "not found")
    for name, value in request.args.items(multi=True):
        if not (text.single_line(name) and text.storable(value)):
            raise ApiError(422, "invalid query parameters", {name: "holds a forbidden character"})


class ChunkedBodyLimit:
    """WSGI middleware: a body without ``Content-Length`` (chunked) over
    ``MAX_CONTENT_LENGTH`` is refused with 413 like one that declares its length.

    Werkzeug caps such a stream at the limit but reads it to the limit and stops,
    so an over-limit body arrived cut short and was accepted. This reads at most one
    byte more than the limit before the app sees the request: over it, the request
    declares that length (and Werkzeug's own check answers 413 through the handlers
    below); within it, the body is handed on with its real length. Only servers that
    end the stream themselves (``wsgi.input_terminated``: gunicorn) send such bodies."""

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ, start_response):
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        streaming = get_content_length(environ) is None and environ.get("wsgi.input_terminated")
        if limit is not None and streaming:
            body = _read_up_to(environ["wsgi.input"], limit + 1)
            # The server has decoded the chunks: what follows is a body of known length.
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(b"" if len(body) > limit else body)
        return self.wsgi_app(environ, start_response)


def _read_up_to(stream, size: int) -> bytes:
    parts, left = [], size
    while left > 0:
        part = stream.read(min(left, 65536))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def register(app: Flask) -> None:
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app)  # type: ignore[method-assign]  # Flask's documented way to wrap the WSGI app
    app.before_request(refuse_hostile_urls)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        if not _wants_json():
            page, status = _page(error.status)
            return page, status, error.headers
        response, status = error_response(error.status, error.message, error.fields, **error.extra)
        response.headers.update(error.headers)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not _wants_json():
            if error.code in PAGE_TEXT:
                return _page(error.code)
            return error
        messages = {
            400: "malformed request",
            413: "request body over 1 MiB",
            415: "content type must be application/json",
        }
        code = error.code or 500
        response = error_response(code, messages.get(code) or error.description or error.name)
        if isinstance(error, MethodNotAllowed):
            response[0].headers["Allow"] = ", ".join(error.valid_methods or [])
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(TimeoutError)
    def database_unavailable(error):
        logger.warning("database unavailable: %s", error)
        _discard_session()
        return error_response(503, "the database is unavailable; try again shortly")

    @app.errorhandler(DataError)
    def bad_value(error: DataError):
        # A value the driver refused that validation let through: the request's fault.
        logger.warning(
            "database refused a value on %s %s: %s", request.method, request.path, error.orig
        )
        _discard_session()
        if not _wants_json():
            return _page(422)
        return error_response(422, "a value could not be stored or looked up")

    @app.errorhandler(DBAPIError)
    def database_error(error: DBAPIError):
        if error.connection_invalidated:
            return database_unavailable(error)
        _discard_session()
        return unexpected(error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        logger.exception("unhandled error on %s %s", request.method, request.path)
        if _wants_json():
            return error_response(500, "internal error")
        return "Internal Server Error", 500
