from flask import g, send_file, url_for

from app import quotas
from app.api.blueprint import api
from app.api.input import ExportRequest
from app.api.output import Export, ExportQueued
from app.api.spec import Raw, Refusal, operation, over_quota, respond
from app.auth import owned_or_404, token_required
from app.errors import ApiError
from app.exports import service
from app.exports.writers import MIMETYPES
from app.models import Export as ExportRow

FILE = Raw(tuple(MIMETYPES.values()), "the file, as an attachment")
OVER_QUOTA = Refusal(
    429,
    "over USER_EXPORTS_PER_DAY, the user's exports a day, or USER_EXPORT_BYTES, the bytes"
    " of export files the user may keep",
    retry_after=True,
)


@api.post("/exports")
@token_required
@operation(
    "Export my data",
    body=ExportRequest,
    responses={202: ExportQueued},
    errors=(400, 401, 409, 413, 422, OVER_QUOTA, 503),
)
def create_export(body: ExportRequest):
    try:
        export = service.request_export(user_id=g.user.id, kind=body.kind, format=body.format)
    except service.ExportAlreadyRunning as running:
        raise ApiError(
            409, f"an export of your {body.kind} is already in progress", job_id=running.job_id
        ) from None
    except quotas.QuotaExceeded as error:
        raise over_quota(error) from None
    queued = ExportQueued(job_id=export.job_id, export_id=export.id, status=export.status)
    return respond(queued, 202, {"Location": url_for("api.get_export", export_id=export.id)})


@api.get("/exports/<export_id>")
@token_required
@operation("An export and its progress", responses={200: Export}, errors=(401, 404, 503))
def get_export(export_id: str):
    return respond(Export.from_row(owned_or_404(ExportRow, export_id, "no such export")))


@api.get("/exports/<export_id>/download")
@token_required
@operation("Download a finished export", responses={200: FILE}, errors=(401, 404, 409, 410, 503))
def download_export(export_id: str):
    return send_export(owned_or_404(ExportRow, export_id, "no such export"))


def send_export(export: ExportRow):
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
