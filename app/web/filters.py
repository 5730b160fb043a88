"""Template filters for every page (registered app-wide, so the admin pages use
them too). The page's script formats live updates the same way (``fileSize`` in
web/index.html)."""

from __future__ import annotations

from app.web.blueprint import web

UNITS = ("KB", "MB", "GB", "TB", "PB")


@web.app_template_filter("file_size")
def file_size(size: int | None) -> str:
    """A byte count as people read it: ``11244466`` is "10.7 MB" (binary
    multiples, one decimal); under a kilobyte, whole bytes. None is blank."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, 0
    while round(value, 1) >= 1024 and unit < len(UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {UNITS[unit]}"
