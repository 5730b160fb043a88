"""The admin pages: jobs (with retry and cancel), failed emails, schedules."""

from app.admin import emails, jobs, schedules  # noqa: F401  (views register on import)
from app.admin.blueprint import admin

__all__ = ["admin"]
