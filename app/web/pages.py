import hashlib
from functools import wraps

from flask import Response, abort, flash, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy import (
    BigInteger,
    BindParameter,
    Integer,
    String,
    bindparam,
    cast,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import joinedload

from app import quotas
from app.api.output import Email as EmailOut
from app.api.output import Export as ExportOut
from app.db import UTCDateTime, db, read_without_transaction
from app.exports import service
from app.jobs import control
from app.models import EXPORT_FORMATS, Email, Export, Job
from app.states import UNFINISHED_EXPORTS, EmailStatus, JobStatus
from app.web.blueprint import web
from app.web.session import login_required

RECENT = 20
# Emails the page keeps watching: they will still change by themselves.
UNFINISHED_EMAILS = (EmailStatus.QUEUED, EmailStatus.SENDING)
# Part of every version: a change to what /exports.json answers for the same rows
# (a new field, another format) must change its ETag too.
LIVE_FORMAT = "2"


def _my_exports():
    return db.session.scalars(
        select(Export)
        .where(Export.user_id == g.user.id)
        .order_by(Export.created_at.desc())
        .limit(RECENT)
        .options(joinedload(Export.job))
    ).all()


def _my_emails():
    return db.session.scalars(
        select(Email)
        .where(Email.user_id == g.user.id)
        .order_by(Email.created_at.desc())
        .limit(RECENT)
        .options(joinedload(Email.job))
    ).all()


def _export_row(export: Export) -> dict:
    row = ExportOut.from_row(export, endpoint="web.download_export").model_dump(mode="json")
    row["created_at"] = export.created_at.isoformat()
    return row


def _email_row(email: Email) -> dict:
    row = EmailOut.from_row(email, admin=False).model_dump(mode="json")
    # A scheduled email is queued as its owner sees it; the page says until when.
    job = email.job
    due = job.scheduled_for if job is not None and job.status == JobStatus.SCHEDULED else None
    row["scheduled_for"] = due.isoformat() if due is not None else None
    return row


def _newest(columns, model, user_id):
    """The user's RECENT newest rows of ``model`` (its (user_id, created_at) index)."""
    return (
        select(*columns)
        .select_from(model)
        .outerjoin(Job, Job.id == model.job_id)
        .where(model.user_id == user_id)
        .order_by(model.created_at.desc())
        .limit(RECENT)
        .subquery()
    )


_USER: BindParameter[int] = bindparam("user_id", type_=Integer)
# Every column the page's rows are made of, and nothing else: one statement, two
# index range scans of RECENT rows each, their jobs by primary key. What it reads
# changes whenever a row of the page would: a new or deleted export or email, an
# export's state, rows, size or its job's progress; an email's job (its state and
# error), attempts or sent time.
_VERSION = union_all(
    select(
        _newest(
            [
                Export.id,
                Export.status.label("state"),
                cast(null(), String).label("note"),
                Job.progress.label("a"),
                Export.rows.label("b"),
                Export.bytes.label("c"),
                cast(null(), UTCDateTime).label("at"),
            ],
            Export,
            _USER,
        )
    ),
    select(
        _newest(
            [
                Email.id,
                Job.status,
                Job.error_type,
                Email.attempts,
                Email.resend_rounds,
                cast(null(), BigInteger),
                Email.sent_at,
            ],
            Email,
            _USER,
        )
    ),
)


def live_version(user_id: int) -> str:
    """A version of what ``/exports.json`` answers the user, at a fraction of
    its cost: the rows' changing columns, hashed; no objects, no rendering."""
    rows = db.session.execute(_VERSION, {"user_id": user_id}).all()
    digest = hashlib.blake2b(digest_size=12)
    digest.update(f"{LIVE_FORMAT}:{user_id}:{[tuple(row) for row in rows]!r}".encode())
    return digest.hexdigest()


def _reads_only(view):
    """Each statement on its own, outside a transaction (PostgreSQL): the poll
    costs one round trip per statement."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        read_without_transaction()
        return view(*args, **kwargs)

    return wrapper


@web.get("/")
@login_required
def index():
    version = live_version(g.user.id)  # before the rows, as /exports.json reads it
    return render_template(
        "web/index.html",
        version=version,
        formats=EXPORT_FORMATS,
        unfinished_exports=[str(status) for status in UNFINISHED_EXPORTS],
        unfinished_emails=[str(status) for status in UNFINISHED_EMAILS],
        exports=[_export_row(e) for e in _my_exports()],
        emails=[_email_row(e) for e in _my_emails()],
    )


@web.get("/exports.json")
@_reads_only
@login_required
def exports_json():
    """What the page polls to move its progress bars and email states.

    Conditional: the answer's ETag is ``live_version``, and a request whose
    If-None-Match holds it gets 304 without a body, before any row is read
    whole. The version is read first, so an answer is never newer than its
    ETag (else a change made in between would be answered 304 afterwards)."""
    version = live_version(g.user.id)
    if request.if_none_match.contains_weak(version):
        unchanged = Response(status=304)
        unchanged.set_etag(version, weak=True)
        return unchanged
    response = jsonify(
        items=[_export_row(e) for e in _my_exports()],
        emails=[_email_row(e) for e in _my_emails()],
    )
    response.set_etag(version, weak=True)
    return response


@web.post("/exports/<export_id>/cancel")
@login_required
def cancel_export(export_id: str):
    """The user stops their own export: a queued one is cancelled at once, a
    running one at its next batch (``control.cancel``)."""
    export = db.session.get(Export, export_id)
    if export is None or export.user_id != g.user.id:
        abort(404)
    try:
        if export.job_id is None:  # its job was cleaned up: long finished
            raise control.JobNotFound(export_id)
        status = control.cancel(export.job_id)
    except (control.JobNotFound, control.JobStateConflict):
        flash("That export has already finished.", "error")
    else:
        stopping = status is JobStatus.RUNNING
        flash("Export stopping: it ends within seconds." if stopping else "Export cancelled.")
    return redirect(url_for("web.index")), 303


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
