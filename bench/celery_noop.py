"""Celery for bench/noop.py: a no-op task, prefork pool, no result backend,
otherwise Celery's defaults (``BENCH_BROKER_URL``); it reports each finished
task to the benchmark (``common.notify_done``, one datagram).

    celery -A bench.celery_noop worker --pool prefork --concurrency 16
"""

from __future__ import annotations

import os

from celery import Celery

from bench.common import notify_done

QUEUE = "celery_noop"

app = Celery("bench", broker=os.environ.get("BENCH_BROKER_URL", "amqp://"))
app.conf.update(
    task_ignore_result=True,
    result_backend=None,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> None:
    notify_done()
