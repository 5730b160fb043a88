"""/admin/emails: emails that failed for good, searched (recipient, subject,
email id, error) and paged newest first, with Resend (a retry of the email's job)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import contains_eager

from app import audit
from app.admin.blueprint import PAGE_SIZE, admin
from app.db import db
from app.emails import GAVE_UP
from app.emails import failed as failed_email
from app.job_search import search
from app.jobs import control
from app.jobs.listing import BadCursor, page
from app.models import Email, Job
from app.web.session import admin_required


def failed_emails():
    """The failed emails (``app.emails.failed``), each with its job loaded."""
    return (
        select(Email)
        .outerjoin(Job, Email.job_id == Job.id)
        .options(contains_eager(Email.job))
        .where(failed_email())
    )


def found_failed_emails(q: str):
    """The failed emails whose job the admin search finds (``search``: the
    job's text holds the email's recipient, subject and id, and its error).
    An inner join with the search on the job alone, so that PostgreSQL can
    take either way in: the trigram index for a rare address, the newest
    emails in order for a common word. An email whose job was cleaned up has
    nothing left to search and is not found."""
    return (
        select(Email)
        .join(Job, Email.job_id == Job.id)
        .options(contains_eager(Email.job))
        .where(Email.sent_at.is_(None), Job.status.in_(GAVE_UP), search(q))
    )


@admin.get("/emails")
@admin_required
def emails():
    cursor = request.args.get("cursor") or None
    q = request.args.get("q", "").strip()
    query = found_failed_emails(q) if q else failed_emails()
    try:
        found = page(query, cursor=cursor, limit=PAGE_SIZE, model=Email)
    except BadCursor:
        abort(400, "That page link is not valid any more; start again from the newest emails.")
    return render_template(
        "admin/emails.html", emails=found.items, q=q, cursor=cursor, older=found.next_cursor
    )


@admin.post("/emails/resend")
@admin_required
def resend_emails():
    """Resend one email (its row's button) or every selected one."""
    one = request.form.get("one")
    email_ids = [one] if one else list(dict.fromkeys(request.form.getlist("email_id")))
    back = redirect(url_for("admin.emails", cursor=request.form.get("cursor") or None), 303)
    if not email_ids:
        flash("Select at least one email first.", "error")
        return back
    job_ids = db.session.scalars(
        select(Email.job_id).where(Email.id.in_(email_ids), Email.job_id.is_not(None))
    ).all()
    if len(email_ids) > control.BATCH:
        abort(400, f"Select at most {control.BATCH} emails.")
    trail = audit.Trail("resend", {"email_ids": email_ids}, size=len(email_ids))
    resent, skipped = control.retry_many(job_ids, also=trail)
    skipped += len(email_ids) - len(job_ids)  # no job left to retry (cleaned up)
    message = f"Resending {resent} email{'' if resent == 1 else 's'}"
    if skipped:
        message += f"; skipped {skipped} not failed any more or without a job to retry"
    flash(message + ".")
    return back
