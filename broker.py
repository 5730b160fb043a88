"""The process's Dramatiq broker, built from the environment when first imported.

``BROKER_URL`` names RabbitMQ (publisher confirms on, so a published message is
one RabbitMQ has taken responsibility for), or ``stub://`` for the in-memory
StubBroker that unit tests use.
"""

from __future__ import annotations

import dramatiq
import pika
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from app.config import from_env
from app.jobs.middleware import AppContext, JobState

# Fail fast when RabbitMQ is unreachable: a web request must not hang on it.
CONNECTION_DEFAULTS = {
    "connection_attempts": 1,
    "socket_timeout": 3,
    "stack_timeout": 5,
    "blocked_connection_timeout": 10,
}


def _create_app():
    from app import create_app

    return create_app()


def middleware() -> list:
    """Dramatiq's defaults (less Prometheus) with ours; the order is explained in
    ``app/jobs/middleware.py``."""
    app_context = AppContext(_create_app)
    return [
        AgeLimit(),
        app_context,
        JobState(app_context),
        Retries(),
        TimeLimit(),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
    ]


def connection_parameters(url: str) -> pika.URLParameters:
    parameters = pika.URLParameters(url)
    query = url.partition("?")[2]
    for name, value in CONNECTION_DEFAULTS.items():
        if name not in query:
            setattr(parameters, name, value)
    return parameters


def build_broker(url: str) -> dramatiq.Broker:
    if url.startswith("stub://"):
        return StubBroker(middleware=middleware())
    broker = RabbitmqBroker(confirm_delivery=True, middleware=middleware())
    broker.parameters = connection_parameters(url)
    return broker


broker = build_broker(from_env()["BROKER_URL"])
dramatiq.set_broker(broker)
