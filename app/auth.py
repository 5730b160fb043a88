"""Users, passwords and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from functools import wraps

from flask import g, request
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from app import login_throttle
from app.db import db
from app.errors import ApiError
from app.models import ApiToken, User

# Compared against when the email is unknown, so that a wrong email costs as
# much time as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = generate_password_hash("not a real password")


def normalize_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, password: str, *, admin: bool = False) -> User:
    user = User(
        email=normalize_email(email),
        password_hash=generate_password_hash(password),
        is_admin=admin,
    )
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None. Raises TooManyFailures while
    the email is throttled after repeated failures (see ``login_throttle``)."""
    email = normalize_email(email)
    login_throttle.check(email)
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
    elif check_password_hash(user.password_hash, password):
        login_throttle.record_success(email)
        return user
    login_throttle.record_failure(email)
    return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> str:
    """A new bearer token; only its hash is stored, so it is shown once."""
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token)))
    db.session.commit()
    return token


def user_for_token(token: str) -> User | None:
    api_token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    return api_token.user if api_token else None


def token_required(view):
    """The request's user from ``Authorization: Bearer TOKEN``, as ``g.user``; 401 otherwise."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = user_for_token(token.strip()) if scheme.lower() == "bearer" and token else None
        if user is None:
            raise ApiError(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        g.user = user
        return view(*args, **kwargs)

    return wrapper
