from app.api.exports import FILE, send_export
from app.api.spec import operation
from app.auth import owned_or_404
from app.db import db
from app.errors import ApiError
from app.exports import links
from app.models import Export
from app.web.blueprint import web
from app.web.session import login_required


@web.get("/exports/download/<signed_token>")
@operation(
    "The link in an export email: anyone holding it may download until it expires",
    responses={200: FILE},
    errors=(404, 410, 503),
    auth=False,
)
def download_signed(signed_token: str):
    try:
        export_id = links.verify(signed_token)
    except links.LinkInvalid:
        raise ApiError(404, "no such download") from None
    except links.LinkExpired:
        raise ApiError(410, "this download link has expired") from None
    export = db.session.get(Export, export_id)
    if export is None:
        raise ApiError(410, "this export is gone")
    return send_export(export)


@web.get("/exports/<export_id>/download")
@login_required
def download_export(export_id: str):
    return send_export(owned_or_404(Export, export_id, "no such export"))
