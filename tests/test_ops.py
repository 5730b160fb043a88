"""Health and readiness probes."""

from __future__ import annotations

from app import create_app
from tests.support.services import free_port


def test_healthz_answers_200_status_ok(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_healthz_needs_no_token(client):
    assert client.get("/healthz", headers={"Authorization": "Bearer nonsense"}).status_code == 200


def test_readyz_answers_200_with_database_and_stub_broker_ok(client, stub_broker):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "broker": "ok"}


def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(tmp_path, stub_broker):
    # Given an app whose PostgreSQL port has nothing listening on it
    url = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing"
    app = create_app({"TESTING": True, "DATABASE_URL": url, "EXPORT_DIR": str(tmp_path)})

    # When the readiness probe runs
    response = app.test_client().get("/readyz")

    # Then it reports the database, not the broker
    assert response.status_code == 503
    assert response.get_json() == {"database": "error", "broker": "ok"}
