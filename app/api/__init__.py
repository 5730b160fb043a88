"""The JSON API, under ``/api``."""

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api")

from app.api import emails, exports, jobs, posts, tokens  # noqa: E402,F401  (routes register on import)
