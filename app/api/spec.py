"""One declaration per operation: ``@operation`` names the request and response
models of a view, validates the request against them (handing the view parsed
models), and leaves the declaration on the view for ``app/openapi.py``.

A validation failure is a 422 ``{error, fields}``, one entry per
bad field, every bad field at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps

from flask import jsonify, request
from pydantic import BaseModel, ValidationError

from app.api.input import json_body
from app.errors import ApiError
from app.quotas import QuotaExceeded

ERROR_TEXT = {
    400: "malformed JSON or wrong content type",
    401: "missing, bad, expired or revoked token",
    403: "not an admin",
    404: "not found, or not yours",
    409: "conflicts with the current state",
    410: "expired or cleaned up",
    413: "body over 1 MiB",
    422: "invalid fields",
    429: "too many failed sign-ins",
    503: "the database or another service is unreachable",
}
# Plain words for pydantic's commonest complaints; its own message otherwise.
_MESSAGES = {
    "missing": "is required",
    "string_type": "must be a string",
    "int_parsing": "must be an integer",
    "int_type": "must be an integer",
    "list_type": "must be a list",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}
MIB = 1024 * 1024


@dataclass(frozen=True)
class Refusal:
    """An error answer an operation documents in its own words, for a status
    whose ``ERROR_TEXT`` does not say it; with ``Retry-After`` when it has one."""

    status: int
    description: str
    retry_after: bool = False


@dataclass(frozen=True)
class Raw:
    """A response that is not JSON: its media types and what it is."""

    media_types: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: dict[int, type[BaseModel] | Raw | None]
    errors: tuple[int | Refusal, ...] = ()
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    auth: bool = True
    path_descriptions: dict[str, str] = field(default_factory=dict)
    # A larger request body than MAX_CONTENT_LENGTH admits, for this operation only.
    max_body_bytes: int | None = None


def operation(summary: str, *, responses: dict, errors: tuple[int | Refusal, ...] = (), **options):
    """Declare a view's request and response models (see ``Operation``).

    The view receives ``body``, ``query`` and ``headers`` keyword arguments for
    those declared. Put it innermost, under ``token_required``: a request
    without a valid token is a 401 before its body is read."""
    spec = Operation(summary=summary, responses=responses, errors=errors, **options)

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if spec.max_body_bytes is not None:
                _admit_body(spec.max_body_bytes)
            kwargs.update(parse(spec))
            return view(*args, **kwargs)

        wrapper.openapi = spec
        return wrapper

    return decorate


def parse(spec: Operation) -> dict:
    # Each part's model, if declared, and how to read its input for that model.
    parts: list[tuple[str, type[BaseModel] | None, Callable[[type[BaseModel]], dict]]] = [
        ("body", spec.body, lambda _model: json_body()),
        ("query", spec.query, _query),
        ("headers", spec.headers, _headers),
    ]
    parsed, problems = {}, {}
    for name, model, read in parts:
        if model is None:
            continue
        try:
            parsed[name] = model.model_validate(read(model))
        except ValidationError as error:
            problems.update(fields(error))
    if problems:
        only_query = spec.query is not None and spec.body is None
        raise ApiError(
            422, "invalid query parameters" if only_query else "invalid fields", problems
        )
    return parsed


def _admit_body(limit: int) -> None:
    """Raise the request's body limit to ``limit`` (Flask's per-request
    ``max_content_length``), refusing a larger declared length in its words."""
    request.max_content_length = limit
    if (request.content_length or 0) > limit:
        raise ApiError(413, f"request body over {limit // MIB} MiB")


def fields(error: ValidationError) -> dict[str, str]:
    """``{field: what is wrong}`` from pydantic's errors, first complaint per
    field; a nested one named by its path (``messages[3].to``)."""
    found: dict[str, str] = {}
    for problem in error.errors(include_url=False, include_input=False):
        name = _path(problem["loc"]) if problem["loc"] else "body"
        message = _MESSAGES.get(problem["type"]) or problem["msg"].removeprefix("Value error, ")
        found.setdefault(name, message)
    return found


def _path(loc: tuple) -> str:
    path = str(loc[0])
    for part in loc[1:]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _query(model: type[BaseModel]) -> dict:
    # An empty value of an optional filter means "not given", as in ``?status=&actor=``.
    optional = {name for name, info in model.model_fields.items() if info.default is None}
    return {
        name: value for name, value in request.args.items() if value != "" or name not in optional
    }


def _headers(model: type[BaseModel]) -> dict:
    names = [info.alias or name for name, info in model.model_fields.items()]
    return {name: request.headers[name] for name in names if name in request.headers}


def over_quota(error: QuotaExceeded) -> ApiError:
    """A quota's refusal as the 429 its ``Refusal`` documents."""
    return ApiError(
        429, f"quota exceeded: {error}", headers={"Retry-After": str(error.retry_after_s)}
    )


def respond(model: BaseModel, status: int = 200, headers: dict | None = None):
    """A response model as JSON; fields a view left unset (admin-only ones) stay out."""
    response = jsonify(model.model_dump(mode="json", exclude_unset=True))
    response.status_code = status
    response.headers.update(headers or {})
    return response
