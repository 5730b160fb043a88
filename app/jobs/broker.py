"""The app's Dramatiq broker, built from ``app.config`` by the app factory and
kept in ``app.extensions``, as Flask's extensions are.

Whatever in the app publishes or asks about queues takes the current app's
broker (``current_broker``). The worker's entry module (the top-level
``broker.py``) makes an app's broker the process's global one, on which the
actors are declared.
"""

from __future__ import annotations

from dramatiq import Middleware
from flask import Flask, current_app

from app import rabbitmq

EXTENSION = "dramatiq"


def init_app(app: Flask, middleware: list[Middleware]) -> None:
    """Build the broker ``BROKER_URL``, ``BROKER_QUEUE_TYPE`` and
    ``BROKER_DELIVERY_LIMIT`` describe, with the worker's ``middleware`` (bound
    to ``app``: ``app.jobs.middleware.stack``). Nothing connects yet: RabbitMQ is
    reached on first use."""
    app.extensions[EXTENSION] = rabbitmq.build(
        app.config["BROKER_URL"],
        middleware=middleware,
        queue_type=app.config["BROKER_QUEUE_TYPE"],
        delivery_limit=app.config["BROKER_DELIVERY_LIMIT"],
    )


def broker_of(app: Flask) -> rabbitmq.AppBroker:
    return app.extensions[EXTENSION]


def current_broker() -> rabbitmq.AppBroker:
    return broker_of(current_app)
