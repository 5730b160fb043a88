from flask import g, jsonify, request, url_for

from app import emails
from app.api import api
from app.api.input import Fields, json_body
from app.auth import token_required
from app.db import db
from app.errors import ApiError
from app.models import Email

MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_IDEMPOTENCY_KEY = 255


@api.post("/emails")
@token_required
def create_email():
    fields = Fields(json_body())
    to = fields.email("to")
    subject = fields.text("subject", max_length=MAX_SUBJECT, single_line=True)
    body = fields.text("body", allow_empty=True)
    html = fields.text("html", required=False, allow_empty=True)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key.strip()) <= MAX_IDEMPOTENCY_KEY):
        fields.errors["Idempotency-Key"] = f"must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
    fields.check()

    email, _ = emails.queue_email(
        user_id=g.user.id,
        to=to,
        subject=subject,
        body=body,
        html=html,
        idempotency_key=key.strip() if key else None,
    )
    response = jsonify(job_id=email.job_id, email_id=email.id, status=emails.status(email))
    response.headers["Location"] = url_for("api.get_job", job_id=email.job_id)
    return response, 202


@api.get("/emails/<email_id>")
@token_required
def get_email(email_id: str):
    email = db.session.get(Email, email_id)
    if email is None or not (g.user.is_admin or email.user_id == g.user.id):
        raise ApiError(404, "no such email")
    return jsonify(emails.to_dict(email))
