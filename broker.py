"""The process's Dramatiq broker, built from the environment when first imported.

``BROKER_URL`` names RabbitMQ, one node or several (publisher confirms on, so a
published message is one RabbitMQ has taken responsibility for; classic or quorum
queues by ``BROKER_QUEUE_TYPE``: app/rabbitmq.py), or ``stub://`` for the
in-memory StubBroker that unit tests use.
"""

from __future__ import annotations

import dramatiq
import pika
from dramatiq.brokers.stub import StubBroker

from app import rabbitmq
from app.config import from_env
from app.jobs.middleware import stack


def _create_app():
    from app import create_app

    return create_app()


def middleware() -> list:
    return stack(_create_app)


def connection_parameters(url: str) -> pika.URLParameters:
    """One node's parameters (``BROKER_URL`` may list several: see app/rabbitmq.py)."""
    return rabbitmq.connection_parameters(url)


def build_broker(url: str, *, queue_type: str | None = None) -> dramatiq.Broker:
    if url.startswith("stub://"):
        return StubBroker(middleware=middleware())
    settings = from_env()
    return rabbitmq.build(
        url,
        middleware=middleware(),
        queue_type=queue_type or settings["BROKER_QUEUE_TYPE"],
        delivery_limit=settings["BROKER_DELIVERY_LIMIT"],
    )


broker = build_broker(from_env()["BROKER_URL"])
dramatiq.set_broker(broker)
