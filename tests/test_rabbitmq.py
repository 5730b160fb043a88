"""app/rabbitmq.py: the node list in BROKER_URL, the quorum queue arguments, the
consumer (acks on the delivering channel only, renewal at the delivery limit)
and publishes bounded in time."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace

import dramatiq
import pika
import pytest

from app import create_app, rabbitmq
from app.jobs.broker import broker_of
from tests.support.proxy import TcpProxy
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT

NODES = "amqp://u:p@h1:5672/vh, amqp://u:p@h2:5673/vh,amqp://u:p@h3:5674/vh?heartbeat=5"


def test_a_comma_separated_url_lists_every_node_with_its_own_port_and_the_same_vhost():
    parameters = rabbitmq.cluster_parameters(NODES, shuffle=False)

    assert [(p.host, p.port, p.virtual_host) for p in parameters] == [
        ("h1", 5672, "vh"),
        ("h2", 5673, "vh"),
        ("h3", 5674, "vh"),
    ]
    assert parameters[2].heartbeat == 5


def test_each_process_starts_at_some_node_and_keeps_the_cluster_order():
    hosts = [p.host for p in rabbitmq.cluster_parameters(NODES)]

    start = hosts.index("h1")
    assert hosts[start:] + hosts[:start] == ["h1", "h2", "h3"]


def test_fail_fast_defaults_apply_unless_the_url_sets_them():
    default = rabbitmq.connection_parameters("amqp://h1/")
    explicit = rabbitmq.connection_parameters("amqp://h1/?socket_timeout=30")

    assert (default.socket_timeout, default.connection_attempts) == (3, 1)
    assert explicit.socket_timeout == 30


def test_an_empty_node_list_is_refused():
    with pytest.raises(ValueError, match="no RabbitMQ node"):
        rabbitmq.node_urls(" , ")


def _app_broker(tmp_path, **config) -> rabbitmq.AppBroker:
    """The broker an app with this configuration builds."""
    return broker_of(create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", **config}))


def test_one_node_gives_plain_parameters_and_several_a_list(tmp_path):
    one = _app_broker(tmp_path, BROKER_URL="amqp://u:p@h1:5672/vh", BROKER_QUEUE_TYPE="classic")
    several = _app_broker(tmp_path, BROKER_URL=NODES, BROKER_QUEUE_TYPE="classic")

    assert type(one) is rabbitmq.RabbitmqBroker
    assert one.parameters.host == "h1"
    assert sorted(p.host for p in several.parameters) == ["h1", "h2", "h3"]


def test_quorum_work_and_delay_queues_dead_letter_at_least_once_without_priorities():
    broker = rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=7)

    arguments = broker._build_queue_arguments("emails")

    assert arguments == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "emails.XQ",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": 7,
    }


def test_quorum_queues_refuse_priorities():
    with pytest.raises(ValueError, match="no priorities"):
        rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=5, max_priority=5)


def test_an_unknown_queue_type_is_refused():
    with pytest.raises(ValueError, match="classic or quorum"):
        rabbitmq.build("amqp://h1/", middleware=[], queue_type="stream", delivery_limit=5)


class _Channel:
    """What the consumer uses of a pika channel; hands out ``deliveries``."""

    def __init__(self, deliveries):
        self.deliveries = deliveries
        self.acked: list[int] = []
        self.nacked: list[int] = []

    def basic_qos(self, prefetch_count):
        pass

    def consume(self, queue, inactivity_timeout):
        return iter(self.deliveries)

    def basic_ack(self, tag):
        self.acked.append(tag)

    def basic_nack(self, tag, requeue):
        self.nacked.append(tag)


def _delivery(tag: int, message_id: str, delivery_count: int = 0):
    headers = {"x-delivery-count": delivery_count} if delivery_count else None
    body = dramatiq.Message(
        queue_name="emails",
        actor_name="send_email",
        args=(),
        kwargs={},
        options={},
        message_id=message_id,
    ).encode()
    method = SimpleNamespace(delivery_tag=tag, redelivered=False)
    return method, SimpleNamespace(headers=headers), body


@pytest.fixture()
def channels(monkeypatch):
    """Each consumer made next gets the next of these channels (one per connection)."""
    pending: list[_Channel] = []

    class Connection:
        def __init__(self, parameters):
            self._channel = pending.pop(0)

        def channel(self):
            return self._channel

        def add_callback_threadsafe(self, callback):
            callback()

    monkeypatch.setattr(pika, "BlockingConnection", Connection)
    return pending


def _consumer(broker, queue="emails"):
    return broker.consumer_class(broker, queue, 2, 1000)


def test_an_ack_for_a_message_of_an_earlier_channel_is_not_sent_on_the_new_one(channels):
    # Given a message in progress from a channel that is gone, and a new channel
    # whose delivery tags start again at 1
    broker = rabbitmq.RabbitmqBroker(middleware=[])
    old, new = (
        _Channel([_delivery(1, "a"), _delivery(2, "b")]),
        _Channel([_delivery(1, "c"), _delivery(2, "d")]),
    )
    channels.extend([old, new])
    first = _consumer(broker)
    _, in_progress = next(first), next(first)
    second = _consumer(broker)  # what Dramatiq's ConsumerThread does after a connection error
    c, d = next(second), next(second)

    # When the old message finishes, and is acked and nacked through the new consumer
    second.ack(in_progress)
    second.nack(in_progress)

    # Then nothing is sent for it: tag 2 on the new channel is message d's
    assert (new.acked, new.nacked, old.acked) == ([], [], [])
    second.ack(d)
    second.nack(c)
    assert (new.acked, new.nacked) == ([2], [1])


def test_the_consumer_keeps_x_delivery_count(channels):
    broker = rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=5)
    channels.append(_Channel([_delivery(1, "a"), _delivery(2, "b", delivery_count=3)]))
    consumer = _consumer(broker)

    assert [next(consumer).delivery_count for _ in range(2)] == [0, 3]


def test_the_last_allowed_delivery_is_renewed_instead_of_run(channels, monkeypatch):
    # Given a quorum queue with a limit of 2, and a message that came back twice
    broker = rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=2)
    published: list[dramatiq.Message] = []
    monkeypatch.setattr(broker, "enqueue", lambda message, **_: published.append(message))
    channel = _Channel([_delivery(1, "a", delivery_count=1), _delivery(2, "b", delivery_count=2)])
    channels.append(channel)
    consumer = _consumer(broker)

    # Then one that came back once runs; the other is published afresh and acked
    assert next(consumer).message_id == "a"
    assert next(consumer) is None
    assert [message.message_id for message in published] == ["b"]
    assert channel.acked == [2]


def test_a_delivery_that_cannot_be_renewed_runs_as_it_is(channels, monkeypatch):
    broker = rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=2)

    def refuse(message, **_):
        raise dramatiq.errors.ConnectionClosed("blocked")

    monkeypatch.setattr(broker, "enqueue", refuse)
    channel = _Channel([_delivery(1, "a", delivery_count=2)])
    channels.append(channel)

    assert _consumer(broker).__next__().message_id == "a"
    assert channel.acked == []


def test_the_delay_queue_which_has_no_limit_renews_nothing(channels, monkeypatch):
    broker = rabbitmq.QuorumRabbitmqBroker(middleware=[], delivery_limit=2)
    monkeypatch.setattr(broker, "enqueue", lambda message, **_: pytest.fail("renewed"))
    channels.append(_Channel([_delivery(1, "a", delivery_count=7)]))

    assert _consumer(broker, "emails.DQ").__next__().delivery_count == 7


def test_a_bounded_publish_to_a_broker_that_never_answers_gives_up_in_time():
    # Given a "broker" that accepts TCP connections and never says a word
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"amqp://guest:guest@127.0.0.1:{silent.getsockname()[1]}/%2F"
        broker = rabbitmq.build(url, middleware=[], queue_type="classic", delivery_limit=0)
        message = dramatiq.Message(
            queue_name="emails", actor_name="send_email", args=(), kwargs={}, options={}
        )
        broker.declare_queue("emails")
        started = time.monotonic()

        # When a request publishes with a budget of 0.5 s
        with pytest.raises(Exception):  # noqa: B017  (pika's handshake timeout)
            broker.enqueue_within(message, 0.5)

        # Then it gave up before the configured handshake timeout (5 s) would
        assert time.monotonic() - started < 4  # a correctness bound, not a benchmark
        broker.close()


def test_outside_a_budget_a_thread_opens_connections_with_the_configured_timeouts():
    broker = rabbitmq.build("amqp://h1/", middleware=[], queue_type="classic", delivery_limit=0)

    bounded = rabbitmq._bounded(broker.parameters, 2.0)

    assert (bounded.blocked_connection_timeout, bounded.stack_timeout) == (2.0, 2.0)
    assert (broker.parameters.blocked_connection_timeout, broker.parameters.stack_timeout) == (
        10,
        5,
    )


def test_a_message_larger_than_any_this_application_makes_is_dead_lettered_unrun(channels):
    broker = rabbitmq.RabbitmqBroker(middleware=[])
    method, properties, _ = _delivery(1, "huge")
    huge = dramatiq.Message(
        queue_name="emails",
        actor_name="send_email",
        args=("x" * 100_000,),
        kwargs={},
        options={},
        message_id="huge",
    ).encode()
    channel = _Channel([(method, properties, huge), _delivery(2, "small")])
    channels.append(channel)
    consumer = _consumer(broker)

    assert next(consumer) is None and channel.nacked == [1]
    assert next(consumer).message_id == "small"


def _message(queue="emails") -> dramatiq.Message:
    return dramatiq.Message(
        queue_name=queue, actor_name="send_email", args=(), kwargs={}, options={}
    )


@pytest.fixture()
def rabbitmq_broker(vhost):
    broker = rabbitmq.build(vhost.url(), middleware=[], queue_type="classic", delivery_limit=0)
    yield broker
    broker.close()


@pytest.mark.rabbitmq
def test_queue_depth_counts_ready_and_delayed_messages_on_rabbitmq_and_on_the_stub(
    rabbitmq_broker,
):
    stub = rabbitmq.StubBroker(middleware=[])
    for broker in (rabbitmq_broker, stub):
        # Given an empty queue, when one message is published now and one delayed
        assert broker.queue_depth("emails") == 0
        broker.publish(_message())
        broker.enqueue(_message(), delay=60_000)

        # Then both wait
        assert broker.queue_depth("emails") == 2, type(broker).__name__


@pytest.mark.rabbitmq
def test_publish_declares_the_queue_and_a_bounded_publish_reaches_rabbitmq(rabbitmq_broker, vhost):
    rabbitmq_broker.publish(_message("exports"), within=5)
    rabbitmq_broker.publish(_message("exports"))

    assert vhost.message_count("exports") == 2


@pytest.mark.rabbitmq
def test_ping_raises_while_rabbitmq_is_cut_off_and_answers_again_once_it_is_back(vhost):
    # Given a broker whose connection goes through a proxy, answering a ping
    proxy = TcpProxy(RABBITMQ_HOST, RABBITMQ_PORT).start()
    url = vhost.url(port=proxy.port)
    broker = rabbitmq.build(url, middleware=[], queue_type="classic", delivery_limit=0)
    try:
        broker.ping()

        # When RabbitMQ is cut off, the ping raises
        proxy.stop()
        with pytest.raises(pika.exceptions.AMQPError):
            broker.ping()

        # Then once it is back, the next ping opens a fresh connection and answers
        proxy.start()
        broker.ping()
    finally:
        broker.close()
        proxy.stop()
