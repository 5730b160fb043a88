"""The broker the app talks to: RabbitMQ (a cluster's node list, quorum queues),
or for unit tests the in-memory StubBroker; both answer the same questions
(``AppBroker``: publish, queue depth, reachability), so no caller asks which one
it has.

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
- the work queue has ``x-delivery-limit``, which RabbitMQ 3.10 counts on every
  return of a message, not only on a crash: the prefetched messages a worker
  hands back when it stops gracefully count too. So the limit does not decide
  whether a job fails; the job database does, counting only crashes (a
  ``running`` job whose lease expired is taken over, which counts as a retry,
  and fails with ``WorkerLost`` once its retries are spent:
  ``attempts.start_attempt``). On a message's last allowed delivery
  (``x-delivery-count`` at the limit) the consumer publishes a fresh copy (same
  id, series and retries, count 0) and acknowledges this one, before any worker
  thread sees it: a delivery that never started an attempt brings no job nearer
  to failing, and RabbitMQ never dead-letters a message merely for restarts.
  Should that publish fail, the delivery runs as it is; if it comes back once
  more, RabbitMQ dead-letters it to ``.XQ`` and the rescue (app/maintenance/rescue.py)
  republishes its job, which is ``queued`` or ``running`` with an expired lease.
  The delay queue has no limit: a worker only holds delayed messages, never runs
  them.

The consumer (both queue types) acknowledges by delivery tag only on the channel
that delivered the message. Dramatiq opens a new channel after a connection
error, whose tags start again at 1, and would otherwise acknowledge a message of
the old channel with its old tag on the new one: that is, some other message.
RabbitMQ requeued the old channel's unacknowledged messages when it closed, so
their acks are dropped (logged at info).

``publish(message, within=seconds)`` bounds a publish in total (connecting, a
blocked connection during a broker alarm, Dramatiq's six attempts): the web
gives up after a few seconds and leaves the job to the relay
(app/maintenance/relay.py), instead of holding a request for a minute.

``publish_many(messages, within=seconds)`` publishes a batch and waits for the
broker's confirms once, not once per message: pika's BlockingChannel in confirm
mode (Dramatiq's channel) waits for each message's ack inside ``basic_publish``,
a round trip per message. So the batch goes out on a channel of its own, put in
confirm mode on pika's underlying channel with a callback that counts the acks
and nacks by delivery tag (``multiple`` included) and the returns (unroutable)
by message id; ``process_data_events`` runs until each message is settled or
the time is up. What is not acked within the time (a nack, a return, a lost
connection, the deadline) counts as not published: the caller leaves those jobs
to the relay. Confirms are what quorum queues promise on (a message is acked once
a majority of replicas has it); AMQP transactions (``tx_select``) would commit
the batch as one, but cannot share a channel with confirms and are documented
by RabbitMQ as the slower, weaker promise.
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence

import dramatiq
import pika
from dramatiq.brokers import rabbitmq as dramatiq_rabbitmq
from dramatiq.brokers import stub as dramatiq_stub
from dramatiq.common import dq_name, q_name, xq_name
from dramatiq.errors import ConnectionClosed

logger = logging.getLogger(__name__)

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


class AppBroker(dramatiq.Broker):
    """A Dramatiq broker that also answers what the app asks of it."""

    def publish(
        self, message: dramatiq.Message, *, within: float | None = None
    ) -> dramatiq.Message:
        """Declare the message's queue and enqueue it; with ``within``, give up
        (raising) once that many seconds have passed in total."""
        raise NotImplementedError

    def publish_many(
        self, messages: Sequence[dramatiq.Message], *, within: float | None = None
    ) -> set[str]:
        """Declare the messages' queues and enqueue them, as ``enqueue`` would each
        (its ``before_enqueue`` and ``after_enqueue`` hooks included), awaiting
        the broker's confirms once for the batch. Returns the ids of the messages
        the broker confirmed (all but those that failed); with ``within``, gives
        up on the rest once that many seconds have passed in total. Never raises
        for a broker fault."""
        raise NotImplementedError

    def queue_depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` and its delay queue, not yet delivered."""
        raise NotImplementedError

    def ping(self) -> None:
        """Raise unless the broker answers now."""
        raise NotImplementedError


class PublishTimeout(ConnectionClosed):
    """``enqueue_within`` ran out of time. Not a pika error, so Dramatiq's
    enqueue does not retry it."""


class RabbitmqBroker(dramatiq_rabbitmq.RabbitmqBroker, AppBroker):
    """Dramatiq's broker, with the consumer below and publishes bounded in time."""

    @property
    def consumer_class(self):
        return _Consumer

    def publish(
        self, message: dramatiq.Message, *, within: float | None = None
    ) -> dramatiq.Message:
        self.declare_queue(message.queue_name)
        if within is None:
            return self.enqueue(message)
        return self.enqueue_within(message, within)

    def publish_many(
        self, messages: Sequence[dramatiq.Message], *, within: float | None = None
    ) -> set[str]:
        seconds = CONFIRM_WAIT_S if within is None else within
        self.state.deadline = time.monotonic() + seconds
        self.state.budget = seconds
        confirms = _Confirms(messages)
        try:
            self._publish_confirmed(messages, confirms)
        except (pika.exceptions.AMQPError, ConnectionClosed):
            logger.warning(
                "%d of %d messages not confirmed; the relay will publish them",
                len(messages) - len(confirms.acked),
                len(messages),
                exc_info=True,
            )
            del self.connection
        finally:
            self.state.deadline = None
        for message in messages:
            if message.message_id in confirms.acked:
                self.emit_after("enqueue", message, None)
        return confirms.acked

    def _publish_confirmed(self, messages: Sequence[dramatiq.Message], confirms: _Confirms):
        for queue_name in dict.fromkeys(q_name(message.queue_name) for message in messages):
            self.declare_queue(queue_name, ensure=True)
        connection = self.connection
        channel = connection.channel()
        try:
            # pika's own channel under the blocking one: its confirm callback
            # sees every ack, where BlockingChannel waits for each in turn.
            impl = channel._impl
            confirms.wake = functools.partial(connection.call_later, 0, _nothing)
            impl.confirm_delivery(confirms.settle, callback=confirms.selected)
            impl.add_on_return_callback(confirms.returned)
            self._wait(connection, lambda: confirms.confirming)
            for message in messages:
                # As enqueue: a message with an eta is a copy bound for the delay queue already.
                self.emit_before("enqueue", message, None)
                impl.basic_publish(
                    exchange="",
                    routing_key=message.queue_name,
                    body=message.encode(),
                    properties=pika.BasicProperties(
                        delivery_mode=2, priority=message.options.get("broker_priority")
                    ),
                    mandatory=True,
                )
                confirms.sent(message.message_id)
            self._wait(connection, confirms.settled)
        finally:
            self.queues_pending.update(confirms.unroutable_queues)  # gone: declare them again
            if channel.is_open:
                channel.close()

    def _wait(self, connection: pika.BlockingConnection, done: Callable[[], bool]) -> None:
        """Process the connection's events until ``done()``, or PublishTimeout at
        the deadline. Each confirm callback sets a 0-delay timer (``wake``), which
        ends a wait for events, so that ``done()`` is asked again at once."""
        deadline = self.state.deadline
        timer = connection.call_later(max(0.0, deadline - time.monotonic()), _nothing)
        try:
            while not done():
                if time.monotonic() >= deadline:
                    raise PublishTimeout(f"not confirmed within {self.state.budget}s")
                connection.process_data_events(time_limit=None)
        finally:
            if connection.is_open:
                connection.remove_timeout(timer)

    def queue_depth(self, queue: str) -> int:
        self.declare_queue(queue)
        ready, delayed, _ = self.get_queue_message_counts(queue)
        return ready + delayed

    def ping(self) -> None:
        """Uses (or opens) this thread's connection, and drops it when it fails:
        the next caller opens a fresh one."""
        try:
            self.connection.process_data_events(time_limit=0)
        except Exception:
            del self.connection
            raise

    def enqueue_within(self, message: dramatiq.Message, seconds: float) -> dramatiq.Message:
        """``enqueue``, giving up with ``PublishTimeout`` (or a pika error) once
        ``seconds`` have passed in total."""
        self.state.deadline = time.monotonic() + seconds
        self.state.budget = seconds
        try:
            return self.enqueue(message)
        finally:
            self.state.deadline = None

    def _get_connection(self):
        deadline = getattr(self.state, "deadline", None)
        if deadline is None:
            return _DRAMATIQ_CONNECTION.fget(self)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PublishTimeout(f"not published within {self.state.budget}s")
        bound = getattr(self.state, "bound", None)
        if getattr(self.state, "connection", None) is not None and (
            bound is None or bound > self.state.budget
        ):
            del self.connection  # opened without a bound: it would wait its full timeouts
        if getattr(self.state, "connection", None) is None:
            connection = pika.BlockingConnection(parameters=_bounded(self.parameters, remaining))
            self.state.connection, self.state.bound = connection, remaining
            self.connections.add(connection)
        return self.state.connection

    def _del_connection(self):
        _DRAMATIQ_CONNECTION.fdel(self)
        self.state.bound = None

    connection = property(_get_connection, fdel=_del_connection)


_DRAMATIQ_CONNECTION = dramatiq_rabbitmq.RabbitmqBroker.connection


def _bounded(parameters, seconds: float):
    """Copies of ``parameters`` whose connect, socket and blocked-connection
    timeouts end within ``seconds`` (shared among the nodes tried in turn)."""
    nodes = parameters if isinstance(parameters, list) else [parameters]
    share = seconds / len(nodes)
    bounded = []
    for node in nodes:
        node = copy.copy(node)
        for name in ("blocked_connection_timeout", "socket_timeout", "stack_timeout"):
            setattr(node, name, min(getattr(node, name) or share, share))
        bounded.append(node)
    return bounded if isinstance(parameters, list) else bounded[0]


class QuorumRabbitmqBroker(RabbitmqBroker):
    """Declares the work, delay and dead-letter queues as quorum queues."""

    def __init__(self, *, delivery_limit: int, **options):
        super().__init__(**options)
        if self.max_priority:
            raise ValueError("quorum queues have no priorities: leave max_priority unset")
        self.delivery_limit = delivery_limit

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


# How long a publish without ``within`` (the relay's) waits for its confirms.
CONFIRM_WAIT_S = 30.0

# The largest message a worker takes: this application's carry ids (a few hundred bytes).
MAX_MESSAGE_BYTES = 64 * 1024


class _Consumer(dramatiq_rabbitmq._RabbitmqConsumer):
    """Dramatiq's consumer, that

    - acknowledges a message only on the channel that delivered it (each
      consumer is one channel; Dramatiq makes a new one after a connection error);
    - keeps ``x-delivery-count`` (Dramatiq drops a delivery's properties), which
      quorum queues set to the number of times the message came back;
    - renews a message on its last delivery allowed by ``x-delivery-limit``.
    """

    _channels = itertools.count(1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel_number = next(self._channels)
        self.iterator = _Remembering(self.iterator)
        limit = getattr(self.broker, "delivery_limit", 0)
        self.delivery_limit = 0 if self.queue_name == dq_name(self.queue_name) else limit

    def __next__(self):
        message = super().__next__()
        if message is None:
            return None
        message.channel_number = self.channel_number
        if self.iterator.body_size > MAX_MESSAGE_BYTES:
            # Messages carry ids only: a large one was not made by this application.
            logger.error(
                "message %.64s is %d bytes (at most %d); dead-lettering it",
                message.message_id,
                self.iterator.body_size,
                MAX_MESSAGE_BYTES,
            )
            super().nack(message)
            return None
        headers = getattr(self.iterator.properties, "headers", None) or {}
        message.delivery_count = int(headers.get("x-delivery-count", 0))
        if self.delivery_limit and message.delivery_count >= self.delivery_limit:
            return self._renew(message)
        return message

    def _renew(self, message):
        """Publish a fresh copy of the message (x-delivery-count 0) and
        acknowledge this delivery, which RabbitMQ would dead-letter were it to
        come back once more."""
        try:
            self.broker.enqueue(message.copy())
        except Exception:
            logger.warning(
                "could not renew message %s at its delivery limit; running it as it is",
                message.message_id,
                exc_info=True,
            )
            return message
        logger.info(
            "message %s came back %d times (x-delivery-limit %d): published a fresh copy",
            message.message_id,
            message.delivery_count,
            self.delivery_limit,
        )
        super().ack(message)
        return None

    def ack(self, message):
        if self._current(message, "ack"):
            super().ack(message)

    def nack(self, message):
        if self._current(message, "nack"):
            super().nack(message)

    def _current(self, message, action: str) -> bool:
        number = getattr(message, "channel_number", None)
        if number == self.channel_number:
            return True
        logger.info(
            "not sending the %s of message %s: it came on channel #%s, which is gone "
            "(RabbitMQ requeued it then); this is #%d",
            action,
            message.message_id,
            number,
            self.channel_number,
        )
        return False


class _Remembering:
    def __init__(self, iterator):
        self.iterator = iterator
        self.properties = None
        self.body_size = 0

    def __iter__(self):
        return self

    def __next__(self):
        method, self.properties, body = next(self.iterator)
        self.body_size = len(body) if body else 0
        return method, self.properties, body


def _nothing() -> None:
    """A timer's callback whose only point is to end a wait for events."""


class _Confirms:
    """The publisher confirms of one batch on its own channel, whose delivery
    tags number its publishes from 1. An ack or nack with ``multiple`` settles
    every tag up to its own. A returned message (unroutable: its queue is gone)
    is acked after its return, and counts as not published."""

    def __init__(self, messages: Sequence[dramatiq.Message]):
        self.queues = {message.message_id: q_name(message.queue_name) for message in messages}
        self.pending: dict[int, str] = {}  # tag: message id, in the order sent
        self.tags = 0
        self.acked: set[str] = set()
        self.unroutable: set[str] = set()
        self.confirming = False
        self.wake: Callable[[], object] = _nothing

    @property
    def unroutable_queues(self) -> set[str]:
        return {self.queues[message_id] for message_id in self.unroutable}

    def sent(self, message_id: str) -> None:
        self.tags += 1
        self.pending[self.tags] = message_id

    def settled(self) -> bool:
        return not self.pending

    def selected(self, _frame) -> None:
        self.confirming = True
        self.wake()

    def settle(self, frame) -> None:
        method = frame.method
        last = method.delivery_tag
        if method.multiple:  # the pending tags are in order
            tags = list(itertools.takewhile(lambda tag: tag <= last, self.pending))
        else:
            tags = [last]
        acked = isinstance(method, pika.spec.Basic.Ack)
        for tag in tags:
            message_id = self.pending.pop(tag, None)
            if acked and message_id is not None and message_id not in self.unroutable:
                self.acked.add(message_id)
        self.wake()

    def returned(self, _channel, _method, _properties, body: bytes) -> None:
        self.unroutable.add(dramatiq.Message.decode(body).message_id)


class StubBroker(dramatiq_stub.StubBroker, AppBroker):
    """Dramatiq's in-memory broker (``BROKER_URL=stub://``, for unit tests),
    answering as ``RabbitmqBroker`` does."""

    def publish(
        self, message: dramatiq.Message, *, within: float | None = None
    ) -> dramatiq.Message:
        self.declare_queue(message.queue_name)
        return self.enqueue(message)  # never waits, so never needs the bound

    def publish_many(
        self, messages: Sequence[dramatiq.Message], *, within: float | None = None
    ) -> set[str]:
        confirmed = set()
        for message in messages:
            try:
                confirmed.add(self.publish(message).message_id)
            except dramatiq.errors.BrokerConnectionError:
                logger.warning("message %s not published", message.message_id, exc_info=True)
        return confirmed

    def queue_depth(self, queue: str) -> int:
        self.declare_queue(queue)
        return self.queues[queue].qsize() + self.queues[dq_name(queue)].qsize()

    def ping(self) -> None:
        """Always answers: it lives in this process."""


STUB_URL = "stub://"


def build(url: str, *, middleware: list, queue_type: str, delivery_limit: int) -> AppBroker:
    """The broker for ``BROKER_URL``: RabbitMQ with publisher confirms on, so a
    published message is one RabbitMQ has taken responsibility for; or the
    StubBroker for ``stub://``."""
    if url.startswith(STUB_URL):
        return StubBroker(middleware=middleware)
    broker: RabbitmqBroker
    if queue_type == "quorum":
        broker = QuorumRabbitmqBroker(
            confirm_delivery=True, middleware=middleware, delivery_limit=delivery_limit
        )
    elif queue_type == "classic":
        broker = RabbitmqBroker(confirm_delivery=True, middleware=middleware)
    else:
        raise ValueError(f"BROKER_QUEUE_TYPE must be classic or quorum, not {queue_type!r}")
    parameters = cluster_parameters(url)
    # One node's parameters alone, as dramatiq itself keeps a single URL's.
    broker.parameters = parameters[0] if len(parameters) == 1 else parameters  # type: ignore[assignment]  # pika takes one or a list
    return broker
