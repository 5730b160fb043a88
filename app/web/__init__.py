"""The user's HTML pages: sign-in, the exports and emails page, and downloads."""

from app.web import downloads, filters, pages, session  # noqa: F401  (they register on import)
from app.web.blueprint import web

__all__ = ["web"]
