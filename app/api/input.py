"""Reading and checking JSON request bodies; every failure is a clear 400 or 422."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import request

from app.errors import ApiError


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


class Fields:
    """Collects field errors so that one 422 names every bad field at once."""

    def __init__(self, body: dict):
        self.body = body
        self.errors: dict[str, str] = {}

    def text(
        self,
        name: str,
        *,
        required: bool = True,
        max_length: int | None = None,
        single_line: bool = False,
        allow_empty: bool = False,
    ) -> str | None:
        value = self.body.get(name)
        if value is None:
            if required:
                self.errors[name] = "is required"
            return None
        if not isinstance(value, str):
            self.errors[name] = "must be a string"
            return None
        if not allow_empty and not value.strip():
            self.errors[name] = "must not be empty"
        elif single_line and ("\r" in value or "\n" in value):
            self.errors[name] = "must not contain CR or LF"
        elif max_length is not None and len(value) > max_length:
            self.errors[name] = f"must be at most {max_length} characters"
        return value

    def email(self, name: str) -> str | None:
        value = self.text(name, max_length=254, single_line=True)
        if value is None or name in self.errors:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as error:
            self.errors[name] = f"is not a valid email address: {error}"
            return None

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.body.get(name)
        if value not in choices:
            self.errors[name] = "must be one of " + ", ".join(choices)
            return None
        return value

    def check(self) -> None:
        if self.errors:
            raise ApiError(422, "invalid fields", self.errors)
