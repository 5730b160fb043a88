from app.db import db
from app.models import Post


def test_post_is_created_for_the_token_owner(app, client, user):
    user_id, headers = user
    response = client.post("/api/posts", json={"body": "hello, world"}, headers=headers)
    assert response.status_code == 201
    assert response.json["body"] == "hello, world"
    with app.app_context():
        post = db.session.get(Post, response.json["id"])
        assert (post.user_id, post.body) == (user_id, "hello, world")


def test_post_without_body_is_refused_and_writes_nothing(app, client, user):
    _, headers = user
    response = client.post("/api/posts", json={}, headers=headers)
    assert (response.status_code, response.json["fields"]) == (422, {"body": "is required"})
    with app.app_context():
        assert db.session.query(Post).count() == 0


def test_post_needs_a_token(client):
    assert client.post("/api/posts", json={"body": "x"}).status_code == 401
