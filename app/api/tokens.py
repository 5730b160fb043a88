from flask import g, request

from app import auth, login_throttle
from app.api.blueprint import api
from app.api.input import TokenRequest
from app.api.output import Token
from app.api.spec import operation, respond
from app.errors import ApiError
from app.login_throttle import Client, TooManyFailures


@api.post("/tokens")
@operation(
    "Sign in: a bearer token for these credentials",
    body=TokenRequest,
    responses={201: Token},
    errors=(400, 401, 413, 422, 429, 503),
    auth=False,
)
def create_token(body: TokenRequest):
    try:
        client = Client(address=login_throttle.client_address(request.environ))
        user = auth.authenticate(body.email, body.password, client=client)
    except TooManyFailures as wait:
        raise ApiError(429, str(wait), headers={"Retry-After": str(wait.retry_after_s)}) from None
    if user is None:
        raise ApiError(401, "bad email or password")
    return respond(Token(token=auth.issue_token(user)), 201)


@api.delete("/tokens/current")
@auth.token_required
@operation(
    "Revoke the token that authenticates this request", responses={204: None}, errors=(401, 503)
)
def revoke_token():
    auth.revoke_token(g.api_token_id)
    return "", 204
