"""SIGTERM while many threads are busy: every running job gets the whole
``--worker-shutdown-timeout`` (Dramatiq's own join shrank it with each busy
thread), and the lease is released only after the threads have stopped."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, outcomes, send_emails
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_sigterm_with_eight_busy_threads_lets_every_job_finish_within_the_timeout(
    live_app, rabbit_broker, start_worker, smtp_server, proxies, headers
):
    # Given a worker whose 8 threads each send an email the server accepts after
    # 5 s, started 0.4 s apart, so that they finish one after another
    smtp_server.recorder.delay_s = 5
    worker = start_worker(
        **{**proxies.env, "MAIL_TIMEOUT": "30", "JOB_LEASE_S": "30"},
        threads=8,
        args=("--worker-shutdown-timeout", "12000"),
    )
    sent = []
    for _ in range(8):
        sent += send_emails(live_app, headers, 1)
        time.sleep(0.4)
    job_ids = [s["job_id"] for s in sent]
    wait_until(lambda: all_in(live_app, job_ids, "running"), message="all eight running")

    # When it is asked to stop (each job then has 2 to 5 s left, well within 12 s)
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=40)

    # Then every job finished before the worker exited: one attempt each, each sent once
    for job_id in job_ids:
        assert outcomes(live_app, job_id) == ["succeeded"]
    assert "still running at the end of the shutdown timeout" not in worker.log()
    counts = audit(live_app, smtp_server)
    assert (counts["emails"], counts["delivered"]) == (8, 8)
