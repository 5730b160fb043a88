"""/admin/audit: the audit log of admin actions, newest first, paged."""

from __future__ import annotations

from flask import abort, render_template, request

from app import audit
from app.admin.blueprint import PAGE_SIZE, admin
from app.jobs.listing import BadCursor
from app.web.session import admin_required


@admin.get("/audit")
@admin_required
def audit_log():
    cursor = request.args.get("cursor") or None
    try:
        found = audit.newest(limit=PAGE_SIZE, cursor=cursor)
    except BadCursor:
        abort(400, "That page link is not valid any more; start again from the newest entries.")
    return render_template(
        "admin/audit.html", entries=found.items, cursor=cursor, older=found.next_cursor
    )
