"""Bare Dramatiq for bench/noop.py: a plain actor on a RabbitmqBroker with
Dramatiq's default middleware (``BENCH_BROKER_URL``); it reports each finished
job to the benchmark (``common.notify_done``, one datagram).

    dramatiq bench.bare_noop --processes 2 --threads 8
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from bench.common import notify_done

broker = RabbitmqBroker(url=os.environ["BENCH_BROKER_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bare_noop")
def noop() -> None:
    notify_done()
