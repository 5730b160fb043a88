from flask import g

from app.api.blueprint import api
from app.api.input import PostRequest
from app.api.output import Post
from app.api.spec import operation, respond
from app.auth import token_required
from app.db import db, utcnow
from app.models import Post as PostRow


@api.post("/posts")
@token_required
@operation(
    "Create a post", body=PostRequest, responses={201: Post}, errors=(400, 401, 413, 422, 503)
)
def create_post(body: PostRequest):
    post = PostRow(user_id=g.user.id, body=body.body, created_at=utcnow())
    db.session.add(post)
    db.session.commit()
    return respond(Post(id=post.id, body=post.body, created_at=post.created_at), 201)
