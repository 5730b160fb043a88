from flask import jsonify

from app import auth
from app.api import api
from app.api.input import Fields, json_body
from app.errors import ApiError
from app.login_throttle import TooManyFailures


@api.post("/tokens")
def create_token():
    fields = Fields(json_body())
    email = fields.text("email", max_length=254)
    password = fields.text("password", max_length=1024)
    fields.check()
    try:
        user = auth.authenticate(email, password)
    except TooManyFailures as wait:
        raise ApiError(429, str(wait), headers={"Retry-After": str(wait.retry_after_s)}) from None
    if user is None:
        raise ApiError(401, "bad email or password")
    return jsonify(token=auth.issue_token(user)), 201
