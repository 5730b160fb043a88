"""In a real Chromium, with a real worker, RabbitMQ and PostgreSQL: after an SMTP
outage, an admin sees the failures as one group on /admin/errors, retries the
group (a confirmation says how many first), watches the bulk action's page move
to the end live, finds the action in /admin/audit, finds a job by its recipient,
cancels queued jobs one by one and through "Cancel all matching", pauses and
resumes a queue, and looks at the overview; "Resend all failed" on the
failed emails page asks first too. Every page is photographed at
1280 px and 420 px wide, and fits the narrow screen."""

from __future__ import annotations

import pytest

from app import auth
from app.db import db
from app.models import AuditEntry, Job
from tests.support.audit import audit
from tests.support.browser import ARTIFACTS, LiveServer, launch_chromium
from tests.support.worker import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq, pytest.mark.postgres]
sync_api = pytest.importorskip("playwright.sync_api")

RECIPIENTS = [f"r{n}@example.com" for n in range(6)]


@pytest.fixture()
def server(live_app):
    server = LiveServer(live_app).start()
    yield server
    server.stop()


def _statuses(app, job_ids) -> list[str]:
    with app.app_context():
        return [db.session.get(Job, job_id).status for job_id in job_ids]


def _photograph(page, name: str) -> None:
    """The page at 1280 px and at 420 px wide; at 420 px nothing may stick out."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in (1280, 420):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420, name
    page.set_viewport_size({"width": 1280, "height": 900})


def test_an_admin_retries_an_error_group_and_follows_the_bulk_action(
    live_app, rabbit_broker, start_worker, smtp_server, server
):
    live_app.config["EMAIL_MAX_RETRIES"] = 0
    with live_app.app_context():
        user = auth.create_user("uma@example.com", "user pw")
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
        auth.create_user("root@example.com", "admin pw", admin=True)
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    start_worker(EMAIL_MAX_RETRIES="0")
    job_ids = []
    for to in RECIPIENTS:
        response = live_app.test_client().post(
            "/api/emails", json={"to": to, "subject": "Invoice", "body": "Hi"}, headers=headers
        )
        assert response.status_code == 202, response.json
        job_ids.append(response.json["job_id"])
    wait_until(lambda: set(_statuses(live_app, job_ids)) == {"failed"}, message="all failed")

    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{server.url}/login")
        page.fill("input[name=email]", "root@example.com")
        page.fill("input[name=password]", "admin pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")

        # "Resend all failed" on the failed emails page asks first, with the count
        page.goto(f"{server.url}/admin/emails")
        assert page.locator("#emails tbody tr").count() == len(RECIPIENTS)
        _photograph(page, "admin-emails")
        page.click("#resend-all")
        page.locator("h1", has_text="Retry 6 jobs?").wait_for()
        back = page.locator("#confirmation a.button")
        assert back.get_attribute("href") == "/admin/emails", back.get_attribute("href")
        back.click()
        page.wait_for_url(f"{server.url}/admin/emails")
        assert set(_statuses(live_app, job_ids)) == {"failed"}

        # The six failures are one group, with a sample traceback
        page.goto(f"{server.url}/admin/errors")
        group = page.locator(".group")
        assert group.count() == 1
        assert "451 4.3.0 try again later" in group.inner_text()
        assert group.locator(".n").inner_text() == "6"
        group.locator("summary").click()
        assert "Traceback" in group.locator("pre.traceback").inner_text()
        _photograph(page, "admin-errors")

        # Retry this group: first a confirmation with the count; nothing moved yet
        smtp_server.recorder.reply = None
        group.locator("button[value=retry_all]").click()
        page.locator("h1", has_text="Retry 6 jobs?").wait_for()
        assert set(_statuses(live_app, job_ids)) == {"failed"}
        _photograph(page, "admin-confirm")

        # Confirmed: the bulk action's own page follows it to the end, live
        page.click("#confirm")
        page.locator("#bulk").wait_for()
        bulk_id = page.url.rsplit("/", 1)[-1]
        wait_until(lambda: _statuses(live_app, [bulk_id]) == ["succeeded"], message="bulk done")
        page.locator("#job-status.succeeded").wait_for(timeout=30_000)
        assert page.locator("#bulk-done").inner_text() == "6"
        _photograph(page, "admin-bulk-action")
        wait_until(lambda: len(smtp_server.messages) == len(RECIPIENTS), message="all sent")
        wait_until(lambda: set(_statuses(live_app, job_ids)) == {"succeeded"}, message="sent")
        assert sorted(m["To"] for m in smtp_server.messages) == sorted(RECIPIENTS)
        # Every job and email whole: each sent once, each job with its two attempts
        assert audit(live_app, smtp_server)["emails"] == len(RECIPIENTS)

        # The audit log says who did it and how it ended
        page.goto(f"{server.url}/admin/audit")
        row = page.locator("#audit tbody tr").first
        assert "root@example.com" in row.inner_text() and "bulk retry" in row.inner_text()
        assert "done 6" in row.inner_text()
        _photograph(page, "admin-audit")

        # The search finds an email's job by its recipient
        page.goto(f"{server.url}/admin/jobs")
        page.fill("input[name=q]", RECIPIENTS[3])
        page.click("#filters button[type=submit]")
        page.wait_for_url("**q=r3%40example.com**")
        assert page.locator("#jobs tbody tr[data-id]").count() == 1
        assert page.locator("#jobs tbody tr[data-id]").get_attribute("data-id") == job_ids[3]
        _photograph(page, "admin-search")

        # Cancel selected, then Cancel all matching (after confirmation) for queued jobs
        smtp_server.recorder.reply = "451 4.3.0 try again later"
        with live_app.app_context():
            waiting = [
                Job(actor="send_email", queue="nowhere", args=["x"], status="queued")
                for _ in range(4)
            ]
            db.session.add_all(waiting)
            db.session.commit()
            waiting_ids = [job.id for job in waiting]
        page.goto(f"{server.url}/admin/jobs?status=queued")
        _photograph(page, "admin-jobs")
        page.check(f'#jobs tr[data-id="{waiting_ids[0]}"] input[name=job_id]')
        page.click("button[value=cancel]")
        page.locator(".flash", has_text="Cancelled 1 job.").wait_for()
        page.click("#cancel-all")
        page.locator("h1", has_text="Cancel 3 jobs?").wait_for()
        page.click("#confirm")
        page.locator("#job-status.succeeded").wait_for(timeout=30_000)
        assert _statuses(live_app, waiting_ids) == ["cancelled"] * 4

        # Pause and resume a queue from its page
        page.goto(f"{server.url}/admin/queues")
        page.click('#queues tr[data-queue="emails"] button')
        page.locator(".flash", has_text="Queue emails paused").wait_for()
        assert "paused" in page.locator('#queues tr[data-queue="emails"]').inner_text()
        _photograph(page, "admin-queues")
        page.click('#queues tr[data-queue="emails"] button')
        page.locator(".flash", has_text="Queue emails resumed").wait_for()

        # The overview shows what happened in the last hour
        page.goto(f"{server.url}/admin")
        assert page.locator("svg.chart").count() == 6
        # the six emails' first attempts were retried, and each then succeeded
        assert page.locator("[data-metric=retried] .muted").first.inner_text() == "6"
        assert page.locator("[data-metric=failed] .muted").first.inner_text() == "0"
        _photograph(page, "admin-overview")
        browser.close()

    with live_app.app_context():
        actions = db.session.query(AuditEntry.action).order_by(AuditEntry.id).all()
        assert [a for (a,) in actions] == [
            "bulk_retry", "cancel", "bulk_cancel", "pause_queue", "resume_queue"
        ]  # fmt: skip
