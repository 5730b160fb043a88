"""Create the demo admin on first run and print its credentials. When the
password file is lost, a new password is written and set on the existing
admin, so that the printed password is always the one that works."""

from __future__ import annotations

import secrets
from pathlib import Path

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app import auth, create_app
from app.config import INSTANCE, write_private
from app.db import db
from app.models import User

EMAIL = "admin@example.com"
PASSWORD_FILE = INSTANCE / "demo-admin-password"


def ensure_demo_admin(password_file: Path = PASSWORD_FILE) -> str:
    """The demo admin's password, after making sure the admin exists with it."""
    fresh = not password_file.exists()
    if fresh:
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(password_file, secrets.token_urlsafe(16))
    password_file.chmod(0o600)
    password = password_file.read_text().strip()
    user = db.session.scalar(select(User).where(User.email == EMAIL))
    if user is None:
        auth.create_user(EMAIL, password, admin=True)
    elif fresh:
        # The old password went with the lost file: the printed one must work.
        user.password_hash = generate_password_hash(password)
        db.session.commit()
    return password


def main() -> None:
    with create_app().app_context():
        password = ensure_demo_admin()
    print(f"\n  Demo admin: {EMAIL}  password: {password}\n", flush=True)


if __name__ == "__main__":
    main()
