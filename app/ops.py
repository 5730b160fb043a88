"""For operators: health and readiness probes, metrics, the API's OpenAPI document."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app import metrics, openapi
from app.api.output import Health, Readiness
from app.api.spec import Raw, operation, respond
from app.db import db
from app.errors import ApiError
from app.jobs.broker import current_broker

logger = logging.getLogger(__name__)
ops = Blueprint("ops", __name__)


@ops.get("/healthz")
@operation("The process is alive", responses={200: Health}, auth=False)
def healthz():
    return respond(Health(status="ok"))


@ops.get("/readyz")
@operation(
    "The database and the broker answer", responses={200: Readiness, 503: Readiness}, auth=False
)
def readyz():
    checks = Readiness(database=_check(_database), broker=_check(_broker))
    healthy = checks.database == "ok" and checks.broker == "ok"
    return respond(checks, 200 if healthy else 503)


@ops.get("/metrics")
@operation(
    "Prometheus metrics; wants the bearer METRICS_TOKEN when one is configured",
    responses={200: Raw(("text/plain",), "Prometheus text format")},
    errors=(401, 503),
    auth=False,
)
def prometheus_metrics():
    expected = current_app.config["METRICS_TOKEN"]
    if expected and not _bearer_is(request.headers.get("Authorization", ""), expected):
        raise ApiError(401, "metrics want a bearer token", headers={"WWW-Authenticate": "Bearer"})
    return Response(metrics.render(), mimetype=CONTENT_TYPE_LATEST)


def _bearer_is(authorization: str, expected: str) -> bool:
    """Compared as bytes, in constant time: ``compare_digest`` refuses str with
    non-ASCII characters (a TypeError, once a 500). A WSGI header is its bytes
    decoded as Latin-1, so a UTF-8 token sent as UTF-8 matches."""
    scheme, _, given = authorization.partition(" ")
    try:
        given_bytes = given.strip().encode("latin-1")
    except UnicodeEncodeError:  # cannot come from the wire
        return False
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, expected.encode("utf-8"))


@ops.get("/openapi.json")
@operation("This document", responses={200: Raw(("application/json",), "OpenAPI 3.1")}, auth=False)
def openapi_document():
    return jsonify(openapi.document(current_app))


def _check(probe) -> str:
    try:
        probe()
        return "ok"
    except Exception as error:
        logger.warning("readiness check %s failed: %s", probe.__name__, error)
        return "error"


def _database() -> None:
    try:
        db.session.execute(text("SELECT 1"))
    finally:
        db.session.rollback()


def _broker() -> None:
    current_broker().ping()
