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
]


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
