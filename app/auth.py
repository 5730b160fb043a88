"""Users, passwords and API tokens."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from flask import current_app, g, request
from sqlalchemy import bindparam, delete, select
from werkzeug.security import check_password_hash, generate_password_hash

from app import login_throttle, text
from app.db import UTCDateTime, db, utcnow
from app.errors import ApiError
from app.models import ApiToken, User

MIN_PASSWORD_LENGTH = 10

# Compared against when the email is unknown, so that a wrong email costs as
# much time as a wrong password and does not reveal which accounts exist.
_DUMMY_HASH = generate_password_hash("not a real password")


def normalize_email(email: str) -> str:
    """One form for every way of writing an address: Unicode compatibility forms
    folded (a full-width "ａ" is an "a"), the domain in its IDNA form, all in
    lower case; so that look-alike spellings cannot make two accounts."""
    local, at, domain = unicodedata.normalize("NFKC", email).strip().rpartition("@")
    if at:
        with contextlib.suppress(UnicodeError):  # not a valid domain: validation refuses it
            domain = domain.encode("idna").decode("ascii")
    return (local + at + domain).lower()


class InvalidCredentials(ValueError):
    """An address or password that cannot belong to an account."""


# Special-use top-level names (RFC 6761, 6762) that internal sites give their
# hosts: an account may live there. ``.invalid`` is reserved never to exist.
INTERNAL_TOP_LEVEL = frozenset(SPECIAL_USE_DOMAIN_NAMES) - {"invalid"}


def check_account_address(email: str) -> None:
    """Raise EmailNotValidError unless ``email`` has the form of an address.

    An account's address need not be deliverable from the internet: no DNS
    lookup, a domain without a dot (``ops@intranet``) and the special-use names
    (``.test``, ``.local``, ``.localhost``, ...) are accepted. email-validator
    refuses the special-use names whatever its options, so such an address is
    checked as if its top-level name were an ordinary one of the same length,
    which leaves every other rule (local part, labels, lengths) as it is.
    (Recipients of the API's emails keep the stricter rule: ``app/api/input.py``.)"""
    try:
        _address_form(email)
    except EmailNotValidError:
        local, at, domain = email.rpartition("@")
        top = domain.rpartition(".")[2]
        if not at or top.lower() not in INTERNAL_TOP_LEVEL:
            raise
        _address_form(f"{local}@{domain[: -len(top)]}{'x' * len(top)}")


def _address_form(email: str) -> None:
    validate_email(
        email, check_deliverability=False, globally_deliverable=False, test_environment=True
    )


def check_new_user(email: str, password: str) -> None:
    """Raise InvalidCredentials unless ``email`` is an address and ``password`` long enough."""
    try:
        check_account_address(email)
    except EmailNotValidError as error:
        raise InvalidCredentials(f"{email!r} is not a valid email address: {error}") from None
    if len(password) < MIN_PASSWORD_LENGTH or not text.storable(password):
        raise InvalidCredentials(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters"
        )


def create_user(email: str, password: str, *, admin: bool = False) -> User:
    user = User(
        email=normalize_email(email),
        password_hash=generate_password_hash(password),
        is_admin=admin,
    )
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(
    email: str, password: str, *, client: login_throttle.Client = login_throttle.LOCAL
) -> User | None:
    """The user with these credentials, or None. Raises TooManyFailures while
    ``client`` must wait after repeated failures (see ``login_throttle``):
    always before any password is hashed."""
    email = normalize_email(email)
    if not text.storable(email) or not text.storable(password) or len(email) > 254:
        # No such account can exist (and the database could not even look for it).
        login_throttle.claim(None, client)
        check_password_hash(_DUMMY_HASH, password)
        return None
    login_throttle.claim(email, client)  # commits: the try is counted before any hashing
    found = db.session.execute(
        select(User.id, User.password_hash).where(User.email == email)
    ).first()
    db.session.rollback()  # no transaction (nor SQLite lock) held across the hash
    if found is None:
        check_password_hash(_DUMMY_HASH, password)
    elif check_password_hash(found.password_hash, password):
        login_throttle.record_success(email, client)
        return db.session.get(User, found.id)
    return None


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> str:
    """A new bearer token; only its hash is stored, so it is shown once."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    ttl = timedelta(days=current_app.config["API_TOKEN_TTL_DAYS"])
    db.session.add(
        ApiToken(
            user_id=user.id, token_hash=_token_hash(token), created_at=now, expires_at=now + ttl
        )
    )
    db.session.commit()
    return token


@dataclass(frozen=True)
class TokenUser:
    """The user a bearer token authenticates, as much as the API asks of it
    (``g.user``), and the token's row (``g.api_token_id``)."""

    id: int
    is_admin: bool
    token_id: int


_TOKENS, _USERS = ApiToken.__table__, User.__table__
# One statement of one shape, built once: every API request runs it, and a
# statement built per call costs more to build and to look up in SQLAlchemy's
# cache than PostgreSQL takes to answer it (prepared after a few runs).
_LIVE_TOKEN = (
    select(_TOKENS.c.id, _TOKENS.c.user_id, _USERS.c.is_admin)
    .join(_USERS, _USERS.c.id == _TOKENS.c.user_id)
    .where(
        _TOKENS.c.token_hash == bindparam("token_hash"),
        _TOKENS.c.expires_at > bindparam("now", type_=UTCDateTime()),
    )
)


def token_for(token: str) -> TokenUser | None:
    """The live token's user, or None when unknown, revoked or expired. Asked of
    the database on every request, so a revocation (its row deleted) or an
    expiry takes effect at once in every process."""
    found = (
        db.session.connection()
        .execute(_LIVE_TOKEN, {"token_hash": _token_hash(token), "now": utcnow()})
        .first()
    )
    if found is None:
        return None
    token_id, user_id, is_admin = found
    return TokenUser(id=user_id, is_admin=is_admin, token_id=token_id)


def revoke_token(token_id: int) -> None:
    db.session.execute(delete(ApiToken).where(ApiToken.id == token_id))
    db.session.commit()


def token_required(view):
    """The request's user from ``Authorization: Bearer TOKEN``, as ``g.user``; 401 otherwise."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        user = token_for(token.strip()) if scheme.lower() == "bearer" and token else None
        if user is None:
            raise ApiError(
                401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"}
            )
        g.user, g.api_token_id = user, user.token_id
        return view(*args, **kwargs)

    return wrapper


def owned_or_404(model, row_id: str, message: str, **options):
    """The ``model`` row with this id when ``g.user`` owns it or is an admin.
    Otherwise a 404 with ``message``, never a 403: another user's job, email or
    export does not exist for them. ``options`` go to ``Session.get``."""
    row = db.session.get(model, row_id, **options)
    if row is None or not (g.user.is_admin or row.user_id == g.user.id):
        raise ApiError(404, message)
    return row
