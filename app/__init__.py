"""The Flask application factory."""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

from app import config as settings
from app import logs
from app.db import connection_settings, db
from app.extensions import csrf, mail, migrate

MAX_REQUEST_BYTES = 1024 * 1024


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment; ``config`` overrides any setting."""
    app = Flask(__name__, instance_path=str(settings.INSTANCE))
    app.config.update(settings.from_env())
    app.config.update(SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_HTTPONLY=True)
    app.config.update(config or {})
    # Served over HTTPS: cookies (the session, and with it the CSRF token) go back
    # over HTTPS only; every response gets the headers of app/web/headers.py.
    if app.config["PUBLIC_URL"].lower().startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    from app.web.headers import secure_headers

    app.after_request(secure_headers)
    key = app.config["SECRET_KEY"]
    app.config["SECRET_KEY"] = (
        settings.check_secret_key(key, "SECRET_KEY") if key else settings.secret_key()
    )
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    url, options = connection_settings(app.config["DATABASE_URL"])
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    logs.configure(app.config["LOG_FORMAT"])
    _ensure_sqlite_directory(app.config["DATABASE_URL"])

    db.init_app(app)
    mail.init_app(app)
    csrf.init_app(app)
    migrate.init_app(app, db, directory=str(settings.ROOT / "migrations"))

    from app import errors, smtp
    from app.admin import admin
    from app.api import api
    from app.bulk_actions import BULK_ACTION
    from app.cli import register_cli
    from app.emails import SEND_EMAIL
    from app.exports.service import RUN_EXPORT
    from app.jobs import broker, kinds, middleware
    from app.maintenance.cleanup import CLEANUP
    from app.maintenance.resend import RESEND_FAILED_EMAILS
    from app.ops import ops
    from app.web import web

    broker.init_app(app, middleware.stack(app))
    kinds.register(app, SEND_EMAIL, RUN_EXPORT, RESEND_FAILED_EMAILS, CLEANUP, BULK_ACTION)
    errors.register(app)
    csrf.exempt(api)  # bearer tokens, not cookies: no cross-site request can carry one
    app.register_blueprint(api)
    app.register_blueprint(ops)
    app.register_blueprint(web)
    app.register_blueprint(admin)
    register_cli(app)
    smtp.warn_if_unverified(app)
    return app


def _ensure_sqlite_directory(url: str) -> None:
    """The database file exists, readable by its owner only (SQLite gives its
    journal files the same mode)."""
    if not url.startswith("sqlite:///") or ":memory:" in url:
        return
    path = Path(url.removeprefix("sqlite:///"))
    if path.parent == settings.INSTANCE:
        settings.ensure_instance_dir()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
