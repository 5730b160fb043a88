from flask import g, url_for

from app import emails, quotas
from app.api.blueprint import api
from app.api.input import EmailHeaders, EmailRequest
from app.api.output import Email, EmailQueued
from app.api.spec import Refusal, operation, over_quota, respond
from app.auth import owned_or_404, token_required
from app.errors import ApiError
from app.models import Email as EmailRow

TOO_LARGE = Refusal(413, "body over 1 MiB, or body plus html over EMAIL_MAX_BODY_BYTES")
OVER_QUOTA = Refusal(429, "over USER_EMAILS_PER_HOUR, the user's emails an hour", retry_after=True)


@api.post("/emails")
@token_required
@operation(
    "Queue an email",
    body=EmailRequest,
    headers=EmailHeaders,
    responses={202: EmailQueued},
    errors=(400, 401, TOO_LARGE, 422, OVER_QUOTA, 503),
)
def create_email(body: EmailRequest, headers: EmailHeaders):
    try:
        email, _ = emails.queue_email(
            user_id=g.user.id,
            to=body.to,
            subject=body.subject,
            body=body.body,
            html=body.html,
            idempotency_key=headers.idempotency_key,
            request_hash=emails.request_hash(body.model_dump()),
        )
    except emails.IdempotencyKeyReused:
        raise ApiError(422, "Idempotency-Key reused with a different request") from None
    except quotas.EmailTooLarge as error:
        raise ApiError(413, str(error)) from None
    except quotas.QuotaExceeded as error:
        raise over_quota(error) from None
    queued = EmailQueued(job_id=email.job_id, email_id=email.id, status=emails.status(email))
    return respond(queued, 202, {"Location": url_for("api.get_job", job_id=email.job_id)})


@api.get("/emails/<email_id>")
@token_required
@operation("An email and its delivery", responses={200: Email}, errors=(401, 404, 503))
def get_email(email_id: str):
    email = owned_or_404(EmailRow, email_id, "no such email")
    return respond(Email.from_row(email, admin=g.user.is_admin))
