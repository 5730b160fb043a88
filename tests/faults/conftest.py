"""The fault-injection suite: real RabbitMQ, PostgreSQL, SMTP server and worker
processes, with TCP proxies the tests control in front of each service."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app import auth
from tests.support.proxy import TcpProxy
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT

# Short leases and timeouts, so that takeovers happen within a test's time.
LEASE_S = 3


@dataclass
class Proxies:
    database: TcpProxy
    broker: TcpProxy
    smtp: TcpProxy
    env: dict[str, str]


@pytest.fixture()
def proxies(postgres, vhost, smtp_server):
    """Proxies in front of the test's database, vhost and SMTP server, and the
    environment of a worker or scheduler that reaches them only through these."""
    database = TcpProxy("127.0.0.1", 5432).start()
    broker = TcpProxy(RABBITMQ_HOST, RABBITMQ_PORT).start()
    smtp = TcpProxy("127.0.0.1", smtp_server.port).start()
    env = {
        "DATABASE_URL": postgres.url(port=database.port),
        "BROKER_URL": vhost.url(port=broker.port),
        "MAIL_PORT": str(smtp.port),
        "JOB_LEASE_S": str(LEASE_S),
        "MAIL_TIMEOUT": "2",
        "RELAY_INTERVAL_S": "1",
    }
    yield Proxies(database, broker, smtp, env)
    for proxy in (database, broker, smtp):
        proxy.stop()


@pytest.fixture()
def headers(live_app):
    with live_app.app_context():
        user = auth.create_user("faults@example.com", "pw")
        return {"Authorization": f"Bearer {auth.issue_token(user)}"}
