from flask import g, jsonify, send_file, url_for

from app.api import api
from app.api.input import Fields, json_body
from app.auth import token_required
from app.db import db
from app.errors import ApiError
from app.exports import service
from app.exports.writers import MIMETYPES
from app.models import EXPORT_FORMATS, EXPORT_KINDS, Export


@api.post("/exports")
@token_required
def create_export():
    fields = Fields(json_body())
    kind = fields.choice("kind", EXPORT_KINDS)
    fmt = fields.choice("format", EXPORT_FORMATS)
    fields.check()
    try:
        export = service.request_export(user_id=g.user.id, kind=kind, format=fmt)
    except service.ExportAlreadyRunning as running:
        raise ApiError(
            409, f"an export of your {kind} is already in progress", job_id=running.job_id
        ) from None
    response = jsonify(job_id=export.job_id, export_id=export.id, status=export.status)
    response.headers["Location"] = url_for("api.get_export", export_id=export.id)
    return response, 202


def _own_export(export_id: str) -> Export:
    export = db.session.get(Export, export_id)
    if export is None or not (g.user.is_admin or export.user_id == g.user.id):
        raise ApiError(404, "no such export")
    return export


@api.get("/exports/<export_id>")
@token_required
def get_export(export_id: str):
    return jsonify(service.to_dict(_own_export(export_id)))


@api.get("/exports/<export_id>/download")
@token_required
def download_export(export_id: str):
    return send_export(_own_export(export_id))


def send_export(export: Export):
    """The finished file as an attachment; 409 before it exists, 410 once expired."""
    if export.status == "expired":
        raise ApiError(410, "this export has expired")
    if export.status != "succeeded":
        raise ApiError(409, f"this export is {export.status}, not ready for download")
    path = service.file_path(export)
    if not path.is_file():
        raise ApiError(410, "this export's file is gone")
    return send_file(
        path,
        mimetype=MIMETYPES[export.format],
        as_attachment=True,
        download_name=f"{export.kind}-{export.created_at:%Y%m%d-%H%M%S}.{export.format}",
        max_age=0,
    )
