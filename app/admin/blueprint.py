"""The admin pages' blueprint, its template filters and page sizes; the views
register on it."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint

from app.states import EmailStatus, ExportStatus, JobStatus

admin = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates")

PAGE_SIZE = 50
# Status counts stop here: past it the page says "1,000+".
COUNT_CAP = 1_000


@admin.context_processor
def states() -> dict:
    """The admin templates compare states with these, as the code does."""
    return {"JobStatus": JobStatus, "EmailStatus": EmailStatus, "ExportStatus": ExportStatus}


@admin.app_template_filter("utc_time")
def format_utc(value: datetime | None) -> str:
    """A timestamp as the admin pages show it: UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@admin.app_template_filter("count_label")
def count_label(value: int, lower_bound: bool = False) -> str:
    """A capped count: "1,000+" past the cap, "n+" when ``value`` is a lower bound."""
    if value > COUNT_CAP:
        return f"{COUNT_CAP:,}+"
    return f"{value:,}+" if lower_bound and value else f"{value:,}"


@admin.app_template_filter("short_id")
def short_id(value: str | None) -> str:
    return (value or "")[:8]
