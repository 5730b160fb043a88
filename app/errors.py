"""Errors as the contract shapes them: JSON ``{error, fields?}`` with the right
status for the API, and 503 (never a hang or a 500) while the database is down."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from sqlalchemy.exc import DBAPIError, OperationalError, TimeoutError
from werkzeug.exceptions import HTTPException

from app.db import db

logger = logging.getLogger(__name__)

JSON_PREFIXES = ("/api/", "/healthz", "/readyz", "/exports/download/", "/openapi.json")


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


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        response, status = error_response(error.status, error.message, error.fields, **error.extra)
        response.headers.update(error.headers)
        return response, status

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not _wants_json():
            return error
        messages = {
            400: "malformed request",
            413: "request body over 1 MiB",
            415: "content type must be application/json",
        }
        response = error_response(error.code or 500, messages.get(error.code, error.description))
        if error.code == 405:
            response[0].headers["Allow"] = ", ".join(error.valid_methods or [])
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(TimeoutError)
    def database_unavailable(error):
        logger.warning("database unavailable: %s", error)
        _discard_session()
        return error_response(503, "the database is unavailable; try again shortly")

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
