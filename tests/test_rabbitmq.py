"""app/rabbitmq.py: the node list in BROKER_URL and the quorum queue arguments."""

from __future__ import annotations

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker

import broker as broker_module
from app import rabbitmq

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


def test_one_node_gives_plain_parameters_and_several_a_list():
    one = broker_module.build_broker("amqp://u:p@h1:5672/vh", queue_type="classic")
    several = broker_module.build_broker(NODES, queue_type="classic")

    assert type(one) is RabbitmqBroker
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


class _Message:
    def __init__(self, delivery_count):
        self.delivery_count = delivery_count


def test_the_last_allowed_delivery_fails_the_job_instead_of_running_it():
    guard = rabbitmq.DeliveryLimit(3)

    guard.before_process_message(None, _Message(2))  # a third delivery still runs
    with pytest.raises(rabbitmq.DeliveryLimitReached, match="delivered 4 times"):
        guard.before_process_message(None, _Message(3))
