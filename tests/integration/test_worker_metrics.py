"""app/worker_metrics.py: a real worker serves Dramatiq's Prometheus metrics."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import auth
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

EMAILS = 3


def _scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {
        (sample.name, sample.labels.get("actor_name")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_worker_metrics_count_the_jobs_it_ran(live_app, rabbit_broker, start_worker, smtp_server):
    worker = start_worker()
    with live_app.app_context():
        user = auth.create_user("metrics@example.com", "pw")
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
    client = live_app.test_client()
    for i in range(EMAILS):
        body = {"to": "m@example.com", "subject": f"m{i}", "body": "x"}
        assert client.post("/api/emails", json=body, headers=headers).status_code == 202
    smtp_server.recorder.wait_for(EMAILS)

    def counted():
        samples = _scrape(worker.metrics_port)
        return samples.get(("dramatiq_messages_total", "send_email")) == EMAILS and samples

    samples = wait_until(counted, timeout=20, message="the worker's counters")
    assert samples.get(("dramatiq_message_errors_total", "send_email"), 0) == 0
    assert samples[("dramatiq_message_duration_milliseconds_count", "send_email")] == EMAILS
    assert samples[("dramatiq_messages_inprogress", "send_email")] == 0
