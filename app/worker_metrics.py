"""Dramatiq's Prometheus middleware for worker processes.

Each ``dramatiq`` worker serves its counters (messages, errors, retries,
dead letters, in-progress, durations per queue and actor) at
``http://$dramatiq_prom_host:$dramatiq_prom_port/metrics`` (defaults
``0.0.0.0:9191``), summed over its processes through files in
``$dramatiq_prom_db``. Several workers on one machine need a port and a
directory each (the systemd unit ``worker@.service`` derives both from the
instance number).

The middleware only comes alive when the dramatiq CLI boots a worker process
(``after_process_boot``): the web and the scheduler build a broker with the
same middleware and must neither write metric files nor fail on hooks of a
worker they are not.
"""

from __future__ import annotations

import os

from dramatiq.middleware import prometheus
from dramatiq.middleware.prometheus import Prometheus


class WorkerMetrics(Prometheus):
    booted = False

    def after_process_boot(self, broker):
        # prometheus_client chooses where metrics keep their values (in memory, or
        # in files that the exporter sums) when it is first imported; the app this
        # process created for its broker has imported it already (app/metrics.py),
        # so choose again once the variable that asks for files is set.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prometheus.DB_PATH
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
        super().after_process_boot(broker)
        self.booted = True

    def after_worker_shutdown(self, broker, worker):
        if self.booted:
            super().after_worker_shutdown(broker, worker)

    def after_nack(self, broker, message):
        if self.booted:
            super().after_nack(broker, message)

    def after_enqueue(self, broker, message, delay):
        if self.booted:
            super().after_enqueue(broker, message, delay)

    def before_delay_message(self, broker, message):
        if self.booted:
            super().before_delay_message(broker, message)

    def before_process_message(self, broker, message):
        if self.booted:
            super().before_process_message(broker, message)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if self.booted:
            super().after_process_message(broker, message, result=result, exception=exception)

    after_skip_message = after_process_message
