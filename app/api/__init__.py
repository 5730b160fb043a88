"""The JSON API, under ``/api``: the blueprint with every view registered."""

from app.api import admin, emails, exports, jobs, posts, tokens  # noqa: F401  (views register on import)
from app.api.blueprint import api

__all__ = ["api"]
