"""RabbitMQ unreachable for 10 s while batches of emails are requested: the
batches are accepted, the relay publishes what their publish left, and every
email is sent once."""

from __future__ import annotations

import threading

import pytest

from tests.support.audit import audit
from tests.support.jobs import all_in
from tests.support.live_services import publish_to
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]


def _send_batches(app, headers, batches: int, size: int) -> list[dict]:
    client = app.test_client()
    items = []
    for b in range(batches):
        messages = [
            {"to": f"b{b}-{n}@example.com", "subject": f"Batch {b} #{n}", "body": "Hi"}
            for n in range(size)
        ]
        response = client.post("/api/emails/batch", json={"messages": messages}, headers=headers)
        assert response.status_code == 202, response.json
        items += response.json["items"]
    return items


def test_batches_during_a_10_s_broker_cut_are_relayed_and_each_email_sent_once(
    live_app, vhost, start_worker, start_scheduler, smtp_server, proxies, headers
):
    # Given the web, a worker and a scheduler that reach RabbitMQ through one proxy
    web_broker = publish_to(live_app, BROKER_URL=vhost.url(port=proxies.broker.port))
    try:
        start_worker(**proxies.env, threads=4)
        start_scheduler(**proxies.env)
        items = _send_batches(live_app, headers, 2, 50)

        # When RabbitMQ is cut off for 10 s while more batches come in
        cut = threading.Thread(target=proxies.broker.cut, args=(10,))
        cut.start()
        items += _send_batches(live_app, headers, 3, 50)
        cut.join()

        # Then every batch was accepted, and every email is sent exactly once
        job_ids = [item["job_id"] for item in items]
        wait_until(lambda: all_in(live_app, job_ids, "succeeded"), timeout=90, message="all")
        counts = audit(live_app, smtp_server)
        assert (counts["emails"], counts["delivered"], counts["duplicates"]) == (250, 250, 0)
    finally:
        web_broker.close()
