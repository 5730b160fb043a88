"""A broker that refuses every publish, like RabbitMQ while it is down."""

from __future__ import annotations

import dramatiq

from app.rabbitmq import StubBroker


class DownBroker(StubBroker):
    def enqueue(self, message, *, delay=None):
        raise dramatiq.errors.ConnectionClosed(OSError("connection refused"))
