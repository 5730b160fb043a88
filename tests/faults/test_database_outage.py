"""While the database is unreachable the API answers 503 at once, and it recovers
by itself when the database is back."""

from __future__ import annotations

import pytest

from app import auth, create_app
from app.db import db
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.postgres

EMAIL = {"to": "carol@example.com", "subject": "Hello", "body": "Hi"}


@pytest.fixture()
def proxied_app(postgres, smtp_server, tmp_path):
    proxy = TcpProxy("127.0.0.1", 5432).start()
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": postgres.url(port=proxy.port),
            "MAIL_PORT": smtp_server.port,
            "EXPORT_DIR": str(tmp_path),
        }
    )
    yield app, proxy
    proxy.stop()
    with app.app_context():
        db.engine.dispose()


# A hang fails the test through this timeout; no timing is asserted.
@pytest.mark.timeout(30)
def test_readyz_and_email_post_answer_503_during_outage_and_recover(proxied_app, stub_broker):
    app, proxy = proxied_app
    client = app.test_client()
    with app.app_context():
        token = auth.issue_token(auth.create_user("erin@example.com", "pw"))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/readyz").status_code == 200

    # When the database becomes unreachable (open connections cut, new ones refused)
    proxy.stop()

    # Then both answer 503 with a JSON error, without hanging
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json["database"]) == (503, "error")
    posted = client.post("/api/emails", json=EMAIL, headers=headers)
    assert posted.status_code == 503
    assert "database" in posted.json["error"]

    # When the database is back, both recover without a restart
    proxy.start()
    assert client.get("/readyz").status_code == 200
    assert client.post("/api/emails", json=EMAIL, headers=headers).status_code == 202
