"""Session sign-in for the HTML pages (the API uses bearer tokens instead)."""

from __future__ import annotations

from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, redirect, render_template, request, session, url_for
from sqlalchemy import update

from app import auth, login_throttle, text
from app.db import db
from app.login_throttle import Client, TooManyFailures
from app.models import User
from app.web.blueprint import web

# Set after a successful sign-in: this browser is a known device for that
# account, which other clients' failures never hold (see app/login_throttle.py).
DEVICE_COOKIE = "known_device"


def current_user() -> User | None:
    """The signed-in user, unless the session predates their last sign-out."""
    user_id = session.get("user_id")
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or session.get("version") != user.session_version:
        return None
    return user


def login_required(view):
    """Anonymous visitors go to /login and come back after signing in."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        user = current_user()
        if user is None:
            return redirect(url_for("web.login", next=request.full_path.rstrip("?")))
        g.user = user
        return view(*args, **kwargs)

    return wrapper


def admin_required(view):
    @login_required
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _safe_next(target: str | None) -> str:
    """Only same-site paths: never redirect a user to another host after sign-in.
    A control character (CR/LF could split the Location header) or a backslash
    (browsers read ``/\\host`` as ``//host``) sends the user to the default page."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or not text.single_line(target)
    ):
        return url_for("web.index")
    parts = urlsplit(target)
    return target if not parts.netloc and not parts.scheme else url_for("web.index")


def _client(email: str) -> Client:
    """This browser as the sign-in throttle counts it: a known device of the
    account when it holds that account's device cookie or a live session of it."""
    email = auth.normalize_email(email)
    device = login_throttle.known_device(request.cookies.get(DEVICE_COOKIE), email)
    signed_in = current_user()
    if device is None and signed_in is not None and signed_in.email == email:
        device = f"session:{signed_in.id}"
    return Client(address=login_throttle.client_address(request.environ), device=device)


def _remember_device(response, email: str, client: Client):
    device = client.device if client.device and ":" not in client.device else None
    response.set_cookie(
        DEVICE_COOKIE,
        login_throttle.device_cookie(email, device),
        max_age=int(login_throttle.DEVICE_TTL.total_seconds()),
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@web.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        email, password = request.form.get("email", ""), request.form.get("password", "")
        client = _client(email)
        try:
            user = auth.authenticate(email, password, client=client)
        except TooManyFailures as wait:
            error = f"Too many failed sign-ins. Try again in {wait.retry_after_s} seconds."
            page = render_template("web/login.html", error=error)
            return page, 429, {"Retry-After": str(wait.retry_after_s)}
        if user is not None:
            session.clear()
            session["user_id"], session["version"] = user.id, user.session_version
            response = redirect(_safe_next(request.args.get("next")))
            return _remember_device(response, user.email, client)
        error, status = "Wrong email or password.", 401
    return render_template("web/login.html", error=error), status


@web.post("/logout")
def logout():
    """Ends this session for good: a copy of the cookie is worthless afterwards,
    because the user's session version moves on (which signs out their other
    browsers too)."""
    user = current_user()
    if user is not None:
        db.session.execute(
            update(User).where(User.id == user.id).values(session_version=User.session_version + 1)
        )
        db.session.commit()
    session.clear()
    return redirect(url_for("web.login"))
