"""Health and readiness probes for operators and load balancers."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from app.db import db
from app.jobs.outbox import get_broker

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
