"""A worker process stopped past its lease (SIGSTOP: a paused VM, a long GC,
swapping) is taken over; when it resumes, its stale attempt must change nothing,
outside the database as well as inside: no file put over the new owner's, no
second copy of an email. Each attempt checks its claim immediately before such
an effect (and its process fences itself while its lease is not renewed)."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from app.db import db
from app.models import Export
from app.seed import seed_posts
from tests.support.audit import audit
from tests.support.jobs import all_in, every_job_is, job, outcomes, send_emails
from tests.support.proxy import TcpProxy
from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT
from tests.support.worker import wait_until

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


class _BrokerProxy:
    def __init__(self, proxy: TcpProxy, url: str):
        self.proxy, self.url = proxy, url


@pytest.fixture()
def own_broker_proxy(vhost):
    """A broker proxy of the paused worker's own, so that its connection can be
    dropped as RabbitMQ would drop a paused machine's (missed heartbeats), and
    no rescued copy waits in the paused worker's prefetch buffer."""
    made: list[TcpProxy] = []

    def make() -> _BrokerProxy:
        proxy = TcpProxy(RABBITMQ_HOST, RABBITMQ_PORT).start()
        made.append(proxy)
        return _BrokerProxy(proxy, vhost.url(port=proxy.port))

    yield make
    for proxy in made:
        proxy.stop()


def test_worker_paused_mid_export_past_its_lease_does_not_replace_the_new_owners_file(
    live_app,
    rabbit_broker,
    start_worker,
    start_scheduler,
    smtp_server,
    proxies,
    headers,
    own_broker_proxy,
):
    with live_app.app_context():
        user_id = db.session.scalar(db.text("SELECT id FROM users"))
        seed_posts(user_id, 2000)
    export_dir = Path(live_app.config["EXPORT_DIR"])
    # Given a worker writing a JSON export slowly (a fresh query per batch)
    paused_broker = own_broker_proxy()
    paused = start_worker(
        "tests.support.slow_export", **{**proxies.env, "BROKER_URL": paused_broker.url}
    )
    created = (
        live_app.test_client()
        .post("/api/exports", json={"kind": "posts", "format": "json"}, headers=headers)
        .json
    )
    wait_until(lambda: job(live_app, created["job_id"]).progress >= 10, message="under way")

    # When it is paused past its lease, another worker takes the export over and
    # finishes it, more posts are written, and then the paused worker resumes
    paused.pause()
    paused_broker.proxy.stop()  # RabbitMQ notices a paused VM's connection is gone
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)
    wait_until(lambda: every_job_is(live_app, "succeeded"), timeout=60, message="taken over")
    with live_app.app_context():
        seed_posts(user_id, 500)
    paused.resume()
    wait_until(
        lambda: not list((export_dir / ".partial").glob("*")),
        timeout=60,
        message="the resumed attempt to end",
    )
    paused.kill()  # its part is over; it cannot reach the broker to stop gracefully

    # Then the file is the new owner's (as many rows as the export says), emailed once
    with live_app.app_context():
        export = db.session.get(Export, created["export_id"])
        assert export.rows == 2000
    assert len(json.loads((export_dir / export.file_name).read_text())) == 2000
    assert outcomes(live_app, created["job_id"]) == [
        "interrupted",
        "succeeded",
    ]
    counts = audit(live_app, smtp_server)
    assert (counts["exports"], counts["delivered"]) == (1, 1)


def test_worker_paused_mid_email_past_its_lease_sends_no_second_copy(
    live_app,
    rabbit_broker,
    start_worker,
    start_scheduler,
    smtp_server,
    proxies,
    headers,
    own_broker_proxy,
):
    # Given an SMTP server that takes 4 s to accept the first recipient
    recorder = smtp_server.recorder
    accept_recipient, delays, asked = recorder.handle_RCPT, [4.0], threading.Event()

    async def slow_first_rcpt(server, session, envelope, address, options):
        asked.set()
        if delays:
            await asyncio.sleep(delays.pop())
        return await accept_recipient(server, session, envelope, address, options)

    recorder.handle_RCPT = slow_first_rcpt
    paused_broker = own_broker_proxy()
    paused = start_worker(**{**proxies.env, "MAIL_TIMEOUT": "30", "BROKER_URL": paused_broker.url})
    [sent] = send_emails(live_app, headers, 1)
    wait_until(asked.is_set, message="the first RCPT")

    # When the worker is paused before DATA, past its lease; another worker takes
    # the email over and sends it; then the paused worker resumes (its RCPT answered)
    paused.pause()
    paused_broker.proxy.stop()
    start_worker(**proxies.env)
    start_scheduler(**proxies.env)
    wait_until(lambda: all_in(live_app, [sent["job_id"]], "succeeded"), timeout=60)
    paused.resume()
    wait_until(lambda: "AttemptFenced" in paused.log(), timeout=30, message="the stale attempt")
    paused.kill()  # its part is over; it cannot reach the broker to stop gracefully

    # Then the stale attempt sent nothing: one copy, and the history of a takeover
    assert outcomes(live_app, sent["job_id"]) == [
        "interrupted",
        "succeeded",
    ]
    assert audit(live_app, smtp_server)["delivered"] == 1
