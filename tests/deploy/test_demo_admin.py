"""deploy/demo_admin.py: the password it prints is always the one that works,
and its file is readable by its owner only."""

from __future__ import annotations

import importlib.util
import stat
from pathlib import Path

import pytest

from app import auth

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "demo_admin.py"


@pytest.fixture()
def demo_admin():
    spec = importlib.util.spec_from_file_location("demo_admin", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_lost_password_file_resets_the_admins_password_to_the_new_one(app, demo_admin, tmp_path):
    password_file = tmp_path / "instance" / "demo-admin-password"
    with app.app_context():
        first = demo_admin.ensure_demo_admin(password_file)
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600

        # When the file is lost and `make run` runs again
        password_file.unlink()
        second = demo_admin.ensure_demo_admin(password_file)

        # Then the printed (new) password signs in, and the old one no longer does
        assert second != first
        assert auth.authenticate(demo_admin.EMAIL, second) is not None
        assert auth.authenticate(demo_admin.EMAIL, first) is None
        # and a run with the file in place changes nothing
        assert demo_admin.ensure_demo_admin(password_file) == second
