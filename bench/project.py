"""The project's side of a benchmark: a PostgreSQL database of its own with the
schema, an API token, the environment its processes run with, and what its
job rows say. Uses only the app's public functions, so it measures whatever
the tree holds when it runs."""

from __future__ import annotations

import logging
import os
from datetime import datetime

os.environ.setdefault("BROKER_URL", "stub://")  # the benchmark process publishes explicitly

from flask import Flask
from sqlalchemy import func, select

from app import auth, create_app
from app.db import db
from app.jobs.broker import broker_of, init_app
from app.jobs.middleware import stack
from app.models import Job
from app.rabbitmq import AppBroker
from tests.support.services import PostgresDatabase, RabbitVhost

SECRET_KEY = "bench-secret-" + "k" * 40

__all__ = ["PostgresDatabase", "RabbitVhost"]


# A benchmark's one user queues far more than any user may: no quotas.
NO_QUOTAS = {"USER_EMAILS_PER_HOUR": 0, "USER_EXPORTS_PER_DAY": 0, "USER_EXPORT_BYTES": 0}


def database_app(database: PostgresDatabase, **config) -> Flask:
    """The app on ``database``, its schema migrated to the latest revision."""
    from flask_migrate import upgrade

    app = create_app(
        {"DATABASE_URL": database.url(), "SECRET_KEY": SECRET_KEY, **NO_QUOTAS, **config}
    )
    logging.disable(logging.INFO)  # Alembic's line per revision
    try:
        with app.app_context():
            upgrade()
    finally:
        logging.disable(logging.NOTSET)
    return app


def env(database: PostgresDatabase, vhost: RabbitVhost, smtp_port: int) -> dict:
    """The environment of the project's web and worker processes."""
    return {
        "DATABASE_URL": database.url(),
        "BROKER_URL": vhost.url(),
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_port),
        "SECRET_KEY": SECRET_KEY,
        **{name: str(value) for name, value in NO_QUOTAS.items()},
    }


def user_and_token(app: Flask, email: str = "bench@example.com") -> tuple[int, str]:
    with app.app_context():
        user = auth.create_user(email, "bench-password-123")
        return user.id, auth.issue_token(user)


def use_broker(app: Flask, url: str) -> AppBroker:
    """``app`` publishes to the project's vhost, as the web does: its broker is
    built again, as its factory builds it, for ``BROKER_URL=url``."""
    app.config["BROKER_URL"] = url
    init_app(app, stack(app))
    return broker_of(app)


def status_counts(app: Flask, actor: str | None = None) -> dict[str, int]:
    with app.app_context():
        query = select(Job.status, func.count()).group_by(Job.status)
        if actor:
            query = query.where(Job.actor == actor)
        counts = dict(db.session.execute(query).all())
        db.session.rollback()
        return counts


def span(app: Flask, actor: str) -> tuple[datetime, datetime]:
    """When the first of ``actor``'s jobs started and the last finished."""
    with app.app_context():
        first, last = db.session.execute(
            select(func.min(Job.started_at), func.max(Job.finished_at)).where(Job.actor == actor)
        ).one()
        db.session.rollback()
    if first is None or last is None:
        raise RuntimeError(f"no {actor} job has finished")
    return first, last


def dispose(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
