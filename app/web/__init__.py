"""The user's HTML pages: sign-in, the exports and emails page, and downloads."""

from flask import Blueprint

web = Blueprint("web", __name__, template_folder="templates")

from app.web import downloads, pages, session  # noqa: E402,F401  (routes register on import)
