"""What the API accepts: request bodies, headers and query strings, declared once
as pydantic models. ``app/api/spec.py`` validates requests against them and
``app/openapi.py`` documents them, so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from flask import request
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from app import text
from app.errors import ApiError
from app.jobs.listing import decode_cursor
from app.states import JobStatus

MAX_SUBJECT = 998  # RFC 5322 line limit
MAX_IDEMPOTENCY_KEY = 255
MAX_POST = 100_000
MAX_BATCH = 1000
# A batch's request body may be this large (every other request 1 MiB,
# MAX_REQUEST_BYTES): a thousand emails of 8 KiB each, text and HTML.
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_SEARCH = 200  # a search's q: a phrase someone remembers, not a document
DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def json_body() -> dict:
    if not request.is_json:
        raise ApiError(400, "content type must be application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the parser can follow
        body = None
    if body is None:
        raise ApiError(400, "malformed JSON")
    if not isinstance(body, dict):
        raise ApiError(400, "the JSON body must be an object")
    return body


def _storable(value: str) -> str:
    if not text.storable(value):
        raise ValueError("must not contain NUL or unpaired surrogate characters")
    return value


def _single_line(value: str) -> str:
    if not text.single_line(value):
        raise ValueError("must not contain control or line-separator characters")
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _address(value: str) -> str:
    # email-validator directly, not pydantic's EmailStr: that one also takes
    # "Name <addr>", and a display name has no place in a bare recipient.
    try:
        address = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"is not a valid email address: {error}") from None
    if address.ascii_email is None:
        # Only SMTPUTF8 (RFC 6531) carries such a local part, and the mail
        # client does not speak it: accepted, the email could never be sent.
        raise ValueError(
            "is not an address this site can send to: the part before the @ must be"
            " ASCII (no accented or non-Latin letters)"
        )
    # An internationalised domain is kept in its IDNA form (xn--...), which every
    # SMTP server takes, so what is stored is what is sent.
    return address.ascii_email


def text_rules(*, max_length: int | None = None, single_line=False, not_blank=False) -> tuple:
    """What makes a string a text field, as ``Annotated[str, *text_rules(...)]``'s
    metadata: never NUL or a lone surrogate; optionally bounded, one line, non-blank."""
    schema: dict = {"type": "string"}
    metadata: list = [Field(max_length=max_length)]
    if max_length is not None:
        schema["maxLength"] = max_length
    if not_blank:
        metadata.append(AfterValidator(_not_blank))
        schema["minLength"] = 1
    metadata.append(AfterValidator(_single_line if single_line else _storable))
    schema["pattern"] = text.SINGLE_LINE_PATTERN if single_line else text.NO_NUL_PATTERN
    return (*metadata, WithJsonSchema(schema))


Text = Annotated[str, *text_rules()]
EmailAddress = Annotated[
    str,
    Field(max_length=254),
    AfterValidator(_single_line),
    AfterValidator(_address),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 254}),
]


class Body(BaseModel):
    # Strict: a number is not a string. Unknown fields are ignored.
    model_config = ConfigDict(strict=True)


class TokenRequest(Body):
    email: Annotated[str, *text_rules(max_length=254, not_blank=True)]
    password: Annotated[str, *text_rules(max_length=1024, not_blank=True)]


class PostRequest(Body):
    body: Annotated[str, *text_rules(max_length=MAX_POST, not_blank=True)]


# How far ahead an email may be scheduled.
MAX_SCHEDULE_AHEAD = timedelta(days=30)


def _iso_with_offset(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("must be a date-time string (ISO 8601 with a timezone offset)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time with a timezone offset") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry its timezone offset, as 2026-12-03T09:00:00+01:00")
    return parsed


def _schedulable(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + MAX_SCHEDULE_AHEAD:
        raise ValueError(f"must be at most {MAX_SCHEDULE_AHEAD.days} days ahead")
    return value.astimezone(UTC)


# ISO 8601 with an offset ("2026-12-03T09:00:00+01:00"), in the future, at most 30 days ahead.
SendAt = Annotated[
    datetime,
    BeforeValidator(_iso_with_offset),
    AfterValidator(_schedulable),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


class EmailRequest(Body):
    to: EmailAddress
    subject: Annotated[str, *text_rules(max_length=MAX_SUBJECT, single_line=True, not_blank=True)]
    body: Text
    html: Text | None = None
    # Sent then instead of at once: the job waits ``scheduled`` in the database.
    send_at: SendAt | None = None


class EmailBatchRequest(Body):
    messages: Annotated[list[EmailRequest], Field(min_length=1, max_length=MAX_BATCH)]


class EmailHeaders(BaseModel):
    idempotency_key: Annotated[
        str | None,
        Field(alias="Idempotency-Key", max_length=MAX_IDEMPOTENCY_KEY),
        AfterValidator(lambda v: v if v is None else _single_line(_not_blank(v)).strip()),
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY}),
    ] = None


# As ``EXPORT_KINDS`` and ``EXPORT_FORMATS`` in app/models.py, which
# tests/test_openapi.py holds them equal to.
ExportKind = Literal["posts"]
ExportFormat = Literal["csv", "json", "xlsx"]


class ExportRequest(Body):
    kind: ExportKind
    format: ExportFormat


def _cursor(value: str) -> str:
    decode_cursor(value)  # BadCursor is a ValueError: pydantic names the field
    return value


class BulkActionRequest(Body):
    action: Literal["retry", "cancel"]
    # A string (the body is strict), one of the job states.
    status: Annotated[JobStatus, Field(strict=False)] | None = None
    actor: Annotated[str, *text_rules(max_length=64, single_line=True)] | None = None
    q: Annotated[str, *text_rules(max_length=MAX_SEARCH, single_line=True)] | None = None
    group: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")] | None = None


class ErrorsQuery(BaseModel):
    status: JobStatus = JobStatus.FAILED
    actor: Annotated[str, *text_rules(max_length=64, single_line=True)] | None = None


class AuditQuery(BaseModel):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, *text_rules(max_length=200, single_line=True)] | None = None


class JobsQuery(BaseModel):
    status: JobStatus | None = None
    actor: Annotated[str, *text_rules(max_length=64, single_line=True)] | None = None
    # Admins only (app/job_search.py): the id, error, arguments, an email's recipient and subject.
    q: Annotated[str, *text_rules(max_length=MAX_SEARCH, single_line=True)] | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, AfterValidator(_cursor)] | None = None
