from flask import flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from app import quotas
from app.api.output import Email as EmailOut
from app.api.output import Export as ExportOut
from app.db import db
from app.exports import service
from app.models import EXPORT_FORMATS, Email, Export
from app.states import UNFINISHED_EXPORTS
from app.web.blueprint import web
from app.web.session import login_required

RECENT = 20


def _my_exports():
    return db.session.scalars(
        select(Export)
        .where(Export.user_id == g.user.id)
        .order_by(Export.created_at.desc())
        .limit(RECENT)
    ).all()


def _export_row(export: Export) -> dict:
    row = ExportOut.from_row(export, endpoint="web.download_export").model_dump(mode="json")
    row["created_at"] = export.created_at.isoformat()
    return row


@web.get("/")
@login_required
def index():
    recent_emails = db.session.scalars(
        select(Email)
        .where(Email.user_id == g.user.id)
        .order_by(Email.created_at.desc())
        .limit(RECENT)
    ).all()
    return render_template(
        "web/index.html",
        formats=EXPORT_FORMATS,
        unfinished=[str(status) for status in UNFINISHED_EXPORTS],
        exports=[_export_row(e) for e in _my_exports()],
        emails=[EmailOut.from_row(e, admin=False).model_dump(mode="json") for e in recent_emails],
    )


@web.get("/exports.json")
@login_required
def exports_json():
    """What the page polls to move its progress bars."""
    return jsonify(items=[_export_row(e) for e in _my_exports()])


@web.post("/exports")
@login_required
def request_export():
    fmt = request.form.get("format")
    if fmt not in EXPORT_FORMATS:
        flash("Unknown export format.", "error")
        return redirect(url_for("web.index")), 303
    try:
        service.request_export(user_id=g.user.id, kind="posts", format=fmt)
    except service.ExportAlreadyRunning:
        flash("An export of your posts is already in progress.", "error")
    except quotas.QuotaExceeded as error:
        flash(f"No new export now: {error}. Try again in {error.retry_after_s} s.", "error")
    return redirect(url_for("web.index")), 303
