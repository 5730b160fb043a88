"""RabbitMQ specifics of the broker: a cluster's node list, and quorum queues.

``BROKER_URL`` names one node, or several nodes of one cluster separated by
commas, each a complete AMQP URL with the same credentials and vhost::

    amqp://app:pw@rmq1:5672/jobs,amqp://app:pw@rmq2:5672/jobs,amqp://app:pw@rmq3:5672/jobs

(a comma inside a password is written ``%2C``). pika tries the nodes in turn
whenever it opens a connection; each process starts at a node picked at random,
so clients spread over the cluster, and a process whose node dies reconnects to
the next one that answers.

``BROKER_QUEUE_TYPE=quorum`` declares every queue (work, ``.DQ`` delay and
``.XQ`` dead-letter) as a replicated quorum queue. What that changes:

- no ``x-max-priority`` (quorum queues have no priorities);
- dead-lettering is ``at-least-once`` (which wants ``x-overflow: reject-publish``):
  RabbitMQ keeps a rejected message until the dead-letter queue confirms it, so
  a leader change cannot drop a dead letter;
- the work queue has ``x-delivery-limit``: a message whose consumer keeps dying
  (a job that crashes or OOM-kills its worker) is dead-lettered after
  ``BROKER_DELIVERY_LIMIT`` such returns instead of looping for ever. On its
  last delivery ``DeliveryLimit`` fails the job with that reason rather than run
  it again, so the job shows ``failed`` and the message lands in ``.XQ``.
  The delay queue has no limit: a worker only holds delayed messages, never runs
  them, and restarts for a deployment must not dead-letter a pending retry.
"""

from __future__ import annotations

import random

import pika
from dramatiq.brokers import rabbitmq as dramatiq_rabbitmq
from dramatiq.common import xq_name
from dramatiq.middleware import Middleware, MiddlewareError

from app.jobs.errors import PermanentError

# Fail fast when a node is unreachable: a web request must not hang on it, and
# with several nodes the next one is tried at once.
CONNECTION_DEFAULTS = {
    "connection_attempts": 1,
    "socket_timeout": 3,
    "stack_timeout": 5,
    "blocked_connection_timeout": 10,
}


def node_urls(url: str) -> list[str]:
    """The comma-separated node URLs of ``BROKER_URL``, blanks ignored."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if not urls:
        raise ValueError("BROKER_URL names no RabbitMQ node")
    return urls


def connection_parameters(url: str) -> pika.URLParameters:
    """One node's parameters, with the fail-fast defaults unless its URL sets them."""
    parameters = pika.URLParameters(url)
    query = url.partition("?")[2]
    for name, value in CONNECTION_DEFAULTS.items():
        if name not in query:
            setattr(parameters, name, value)
    return parameters


def cluster_parameters(url: str, *, shuffle: bool = True) -> list[pika.URLParameters]:
    """Parameters for every node, rotated to start at a random one."""
    parameters = [connection_parameters(node) for node in node_urls(url)]
    if shuffle and len(parameters) > 1:
        start = random.randrange(len(parameters))
        parameters = parameters[start:] + parameters[:start]
    return parameters


class DeliveryLimitReached(PermanentError, MiddlewareError):
    """The message's consumer died on each of its deliveries. A MiddlewareError,
    so the broker lets it out of ``before_process_message`` and the worker treats
    it as the attempt's outcome."""


class QuorumRabbitmqBroker(dramatiq_rabbitmq.RabbitmqBroker):
    """Declares the work, delay and dead-letter queues as quorum queues."""

    def __init__(self, *, delivery_limit: int, **options):
        super().__init__(**options)
        if self.max_priority:
            raise ValueError("quorum queues have no priorities: leave max_priority unset")
        self.delivery_limit = delivery_limit
        self.add_middleware(DeliveryLimit(delivery_limit))

    @property
    def consumer_class(self):
        return _HeaderKeepingConsumer

    def _build_queue_arguments(self, queue_name):
        # Used for the work queue and its delay queue; see _declare_dq_queue.
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": xq_name(queue_name),
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": self.delivery_limit,
        }

    def _declare_dq_queue(self, queue_name):
        arguments = self._build_queue_arguments(queue_name)
        del arguments["x-delivery-limit"]
        return self.channel.queue_declare(
            queue=dramatiq_rabbitmq.dq_name(queue_name), durable=True, arguments=arguments
        )

    def _declare_xq_queue(self, queue_name):
        return self.channel.queue_declare(
            queue=xq_name(queue_name),
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": dramatiq_rabbitmq.DEAD_MESSAGE_TTL,
            },
        )


class DeliveryLimit(Middleware):
    """On the last delivery RabbitMQ allows, fail the job instead of running it.

    Appended after ``JobState``, so the attempt is open and the error lands in
    the job's history; ``DeliveryLimitReached`` is a ``PermanentError``, so
    Retries does not retry and the message is dead-lettered."""

    def __init__(self, limit: int):
        self.limit = limit

    def before_process_message(self, broker, message):
        returned = getattr(message, "delivery_count", 0)
        if self.limit and returned >= self.limit:
            raise DeliveryLimitReached(
                f"delivered {returned + 1} times; its worker stopped during each of the "
                f"first {returned} (x-delivery-limit {self.limit})"
            )


class _HeaderKeepingConsumer(dramatiq_rabbitmq._RabbitmqConsumer):
    """Dramatiq drops a delivery's properties; keep ``x-delivery-count``, which
    quorum queues set to the number of times the message came back."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.iterator = _Remembering(self.iterator)

    def __next__(self):
        message = super().__next__()
        if message is not None:
            headers = getattr(self.iterator.properties, "headers", None) or {}
            message.delivery_count = int(headers.get("x-delivery-count", 0))
        return message


class _Remembering:
    def __init__(self, iterator):
        self.iterator = iterator
        self.properties = None

    def __iter__(self):
        return self

    def __next__(self):
        method, self.properties, body = next(self.iterator)
        return method, self.properties, body


def build(url: str, *, middleware: list, queue_type: str, delivery_limit: int):
    """The broker for ``BROKER_URL``: publisher confirms on, so a published
    message is one RabbitMQ has taken responsibility for."""
    if queue_type == "quorum":
        broker = QuorumRabbitmqBroker(
            confirm_delivery=True, middleware=middleware, delivery_limit=delivery_limit
        )
    elif queue_type == "classic":
        broker = dramatiq_rabbitmq.RabbitmqBroker(confirm_delivery=True, middleware=middleware)
    else:
        raise ValueError(f"BROKER_QUEUE_TYPE must be classic or quorum, not {queue_type!r}")
    parameters = cluster_parameters(url)
    broker.parameters = parameters[0] if len(parameters) == 1 else parameters
    return broker
