"""RabbitMQ unreachable for 10 s while emails are requested and sent."""

from __future__ import annotations

import threading

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in, send_emails
from tests.support.live_services import publish_to
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


def test_broker_cut_for_10_s_under_load_loses_nothing_and_sends_each_once(
    live_app, vhost, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given the web, a worker and a scheduler that reach RabbitMQ through one proxy
    web_broker = publish_to(live_app, BROKER_URL=vhost.url(port=proxies.broker.port))
    try:
        start_worker(**proxies.env, threads=4)
        start_scheduler(**proxies.env)
        sent = send_emails(live_app, headers, 100)

        # When RabbitMQ is cut off for 10 s while more requests come in
        cut = threading.Thread(target=proxies.broker.cut, args=(10,))
        cut.start()
        sent += send_emails(live_app, headers, 100)
        cut.join()

        # Then every request was accepted, and every email is sent exactly once
        job_ids = [s["job_id"] for s in sent]
        wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=90, message="all")
        counts = audit(live_app, smtp_server)
        assert (counts["emails"], counts["delivered"], counts["duplicates"]) == (200, 200, 0)
    finally:
        web_broker.close()
