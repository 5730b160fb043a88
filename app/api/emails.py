from flask import g, url_for

from app import email_queue, quotas
from app.api.blueprint import api
from app.api.input import MAX_BATCH, MAX_BATCH_BYTES, EmailBatchRequest, EmailHeaders, EmailRequest
from app.api.output import Email, EmailBatchQueued, EmailQueued
from app.api.spec import MIB, Refusal, operation, over_quota, respond
from app.auth import owned_or_404, token_required
from app.errors import ApiError
from app.models import Email as EmailRow

TOO_LARGE = Refusal(413, "body over 1 MiB, or body plus html over EMAIL_MAX_BODY_BYTES")
BATCH_TOO_LARGE = Refusal(
    413,
    f"body over {MAX_BATCH_BYTES // MIB} MiB, or a message's body plus html over"
    " EMAIL_MAX_BODY_BYTES (``fields`` names it, as messages[3].body); nothing is queued",
)
OVER_QUOTA = Refusal(429, "over USER_EMAILS_PER_HOUR, the user's emails an hour", retry_after=True)
BATCH_OVER_QUOTA = Refusal(
    429,
    "more messages than USER_EMAILS_PER_HOUR leaves room for this hour (each counts one);"
    " nothing is queued",
    retry_after=True,
)
INVALID_BATCH = Refusal(
    422,
    f"invalid fields, named by their path (messages[3].to), or not 1 to {MAX_BATCH} messages;"
    " or the Idempotency-Key came with a different batch. Nothing is queued",
)
KEY_REUSED = "Idempotency-Key reused with a different request"


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
        queued, _ = email_queue.queue_email(
            user_id=g.user.id,
            message=email_queue.NewEmail(
                to=body.to,
                subject=body.subject,
                body=body.body,
                html=body.html,
                send_at=body.send_at,
            ),
            idempotency_key=headers.idempotency_key,
            request_hash=email_queue.request_hash(body.model_dump()),
        )
    except email_queue.IdempotencyKeyReused:
        raise ApiError(422, KEY_REUSED) from None
    except quotas.EmailTooLarge as error:
        raise ApiError(413, str(error)) from None
    except quotas.QuotaExceeded as error:
        raise over_quota(error) from None
    answer = _answer(queued)
    return respond(answer, 202, {"Location": url_for("api.get_job", job_id=answer.job_id)})


@api.post("/emails/batch")
@token_required
@operation(
    "Queue a batch of emails",
    body=EmailBatchRequest,
    headers=EmailHeaders,
    responses={202: EmailBatchQueued},
    errors=(400, 401, BATCH_TOO_LARGE, INVALID_BATCH, BATCH_OVER_QUOTA, 503),
    max_body_bytes=MAX_BATCH_BYTES,
)
def create_email_batch(body: EmailBatchRequest, headers: EmailHeaders):
    messages = [
        email_queue.NewEmail(
            to=m.to, subject=m.subject, body=m.body, html=m.html, send_at=m.send_at
        )
        for m in body.messages
    ]
    try:
        queued, _ = email_queue.queue_emails(
            user_id=g.user.id,
            messages=messages,
            idempotency_key=headers.idempotency_key,
            request_hash=email_queue.request_hash(body.model_dump()),
        )
    except email_queue.IdempotencyKeyReused:
        raise ApiError(422, KEY_REUSED) from None
    except email_queue.MessageTooLarge as error:
        raise ApiError(413, str(error), {f"messages[{error.index}].body": str(error)}) from None
    except quotas.QuotaExceeded as error:
        raise over_quota(error) from None
    return respond(EmailBatchQueued(items=[_answer(item) for item in queued]), 202)


def _answer(queued: email_queue.Queued) -> EmailQueued:
    return EmailQueued(job_id=queued.job_id, email_id=queued.email_id, status=queued.status)


@api.get("/emails/<email_id>")
@token_required
@operation("An email and its delivery", responses={200: Email}, errors=(401, 404, 503))
def get_email(email_id: str):
    email = owned_or_404(EmailRow, email_id, "no such email")
    return respond(Email.from_row(email, admin=g.user.is_admin))
