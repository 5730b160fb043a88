from flask import g, jsonify

from app.api import api
from app.api.input import Fields, json_body
from app.auth import token_required
from app.db import db, utcnow
from app.models import Post

MAX_BODY = 100_000


@api.post("/posts")
@token_required
def create_post():
    fields = Fields(json_body())
    body = fields.text("body", max_length=MAX_BODY)
    fields.check()
    post = Post(user_id=g.user.id, body=body, created_at=utcnow())
    db.session.add(post)
    db.session.commit()
    return jsonify(id=post.id, body=post.body, created_at=post.created_at.isoformat()), 201
