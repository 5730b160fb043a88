"""The admin pages: the overview, jobs (with retry and cancel, one by one or in
bulk), error groups, failed emails, queues, the audit log, schedules."""

from app.admin import (  # noqa: F401  (views register on import)
    audit_log,
    emails,
    errors,
    jobs,
    overview,
    queue_page,
    schedules,
)
from app.admin.blueprint import admin

__all__ = ["admin"]
