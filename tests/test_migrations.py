"""The Alembic migrations create exactly the schema the models describe."""

from __future__ import annotations

from app import create_app
from app.db import db


def test_migrations_match_the_models_on_sqlite(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"})
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    check = app.test_cli_runner().invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output
    with app.app_context():
        db.engine.dispose()
