"""Signed download links: the export id, signed with SECRET_KEY and stamped with
the time, so a link cannot be forged or altered and stops working after
EXPORT_LINK_TTL_S."""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "export-download"


class LinkExpired(Exception):
    pass


class LinkInvalid(Exception):
    pass


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def sign(export_id: str) -> str:
    return _serializer().dumps(export_id)


def external_url(export_id: str) -> str:
    """The link for an email, which a worker writes outside any request."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/exports/download/{sign(export_id)}"


def verify(token: str) -> str:
    """The export id in a link; LinkInvalid if tampered, LinkExpired if too old."""
    try:
        return _serializer().loads(token, max_age=current_app.config["EXPORT_LINK_TTL_S"])
    except SignatureExpired:
        raise LinkExpired(token) from None
    except BadSignature:
        raise LinkInvalid(token) from None
