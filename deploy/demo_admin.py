"""Create the demo admin on first run and print its credentials."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from app import auth, create_app  # noqa: E402
from app.db import db  # noqa: E402
from app.models import User  # noqa: E402

EMAIL = "admin@example.com"
PASSWORD_FILE = ROOT / "instance" / "demo-admin-password"


def main() -> None:
    with create_app().app_context():
        if not PASSWORD_FILE.exists():
            PASSWORD_FILE.write_text(secrets.token_urlsafe(12))
        password = PASSWORD_FILE.read_text().strip()
        user = db.session.scalar(select(User).where(User.email == EMAIL))
        if user is None:
            auth.create_user(EMAIL, password, admin=True)
    print(f"\n  Demo admin: {EMAIL}  password: {password}\n", flush=True)


if __name__ == "__main__":
    main()
