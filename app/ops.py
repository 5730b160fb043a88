"""For operators: health and readiness probes, metrics, the API's OpenAPI document."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from app import metrics
from app.db import db
from app.jobs.outbox import get_broker
from app.openapi import DOCUMENT

logger = logging.getLogger(__name__)
ops = Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz():
    return jsonify(status="ok")


@ops.get("/readyz")
def readyz():
    checks = {"database": _check(_database), "broker": _check(_broker)}
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(checks), 200 if healthy else 503


@ops.get("/metrics")
def prometheus_metrics():
    return Response(metrics.render(), mimetype=CONTENT_TYPE_LATEST)


@ops.get("/openapi.json")
def openapi():
    return jsonify(DOCUMENT)


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
    broker = get_broker()
    if hasattr(broker, "connection"):  # RabbitMQ; the StubBroker is always up
        try:
            broker.connection.process_data_events(time_limit=0)
        except Exception:
            del broker.connection  # the next caller opens a fresh one
            raise
