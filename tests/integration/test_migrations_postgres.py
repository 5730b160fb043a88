"""The Alembic migrations create exactly the schema the models describe, on PostgreSQL."""

import pytest

from app import create_app
from app.db import db

pytestmark = pytest.mark.postgres


def test_migrations_match_the_models_on_postgresql(postgres):
    # `postgres` is a copy of a database made by `flask db upgrade`
    app = create_app({"DATABASE_URL": postgres.url()})
    check = app.test_cli_runner().invoke(args=["db", "check"])
    assert check.exit_code == 0, check.output
    with app.app_context():
        db.engine.dispose()
