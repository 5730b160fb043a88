"""An admin finds a failed email job on /admin/jobs, clicks Retry once the SMTP
server is back, and watches the job reach ``succeeded``."""

from __future__ import annotations

import pytest

from app import auth
from app.db import db
from app.models import Job
from tests.support.browser import ARTIFACTS, LiveServer, launch_chromium
from tests.support.worker import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq, pytest.mark.postgres]
sync_api = pytest.importorskip("playwright.sync_api")

RECIPIENTS = ("carol@example.com", "dmitri@example.com", "erin@example.com")


@pytest.fixture()
def server(live_app):
    server = LiveServer(live_app).start()
    yield server
    server.stop()


def _status(app, job_id: str) -> str:
    with app.app_context():
        return db.session.get(Job, job_id).status


def test_admin_retries_a_failed_email_job_and_sees_it_succeed(
    live_app, rabbit_broker, start_worker, smtp_server, server
):
    # Given emails that failed for good: the SMTP server refused them for a while
    # and the worker does no automatic retries
    live_app.config["EMAIL_MAX_RETRIES"] = 0  # what the web records for display
    with live_app.app_context():
        user = auth.create_user("uma@example.com", "user pw")
        headers = {"Authorization": f"Bearer {auth.issue_token(user)}"}
        auth.create_user("root@example.com", "admin pw", admin=True)
    smtp_server.recorder.reply = "451 4.3.0 try again later"
    start_worker(EMAIL_MAX_RETRIES="0")
    job_ids = []
    for to in RECIPIENTS:
        response = live_app.test_client().post(
            "/api/emails", json={"to": to, "subject": f"Hello {to}", "body": "Hi"}, headers=headers
        )
        assert response.status_code == 202, response.json
        job_ids.append(response.json["job_id"])
    for job_id in job_ids:
        wait_until(lambda j=job_id: _status(live_app, j) == "failed", message="job failed")
    job_id = job_ids[0]

    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        # An admin signs in and opens the failed jobs
        page.goto(f"{server.url}/admin/jobs?status=failed")
        assert page.url.startswith(f"{server.url}/login")
        page.fill("input[name=email]", "root@example.com")
        page.fill("input[name=password]", "admin pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/admin/jobs?status=failed")
        row = page.locator(f'#jobs tr[data-id="{job_id}"]')
        assert row.locator(".status").inner_text() == "failed"
        assert "451" in row.inner_text()
        assert page.locator("#jobs tbody tr").count() == len(RECIPIENTS)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "admin-jobs-failed.png"), full_page=True)

        # When the SMTP server is back and they tick the job and click Retry
        smtp_server.recorder.reply = None
        row.locator("input[name=job_id]").check()
        page.click("button[value=retry]")
        page.locator(".flash", has_text="Retried 1 job.").wait_for()

        # Then, with auto-refresh on, the job shows succeeded without a manual reload
        page.goto(f"{server.url}/admin/jobs")
        page.check("#auto-refresh")
        page.locator(f'#jobs tr[data-id="{job_id}"] .status.succeeded').wait_for(timeout=30_000)
        assert [m["To"] for m in smtp_server.messages] == [RECIPIENTS[0]]
        assert [_status(live_app, j) for j in job_ids[1:]] == ["failed", "failed"]
        page.screenshot(path=str(ARTIFACTS / "admin-jobs.png"), full_page=True)

        # And its page shows both attempts: the refused one and the one that worked
        page.click(f'#jobs tr[data-id="{job_id}"] td.mono a')
        page.wait_for_url(f"{server.url}/admin/jobs/{job_id}")
        outcomes = page.locator("#attempts tbody tr .status").all_inner_texts()
        assert outcomes == ["failed", "succeeded"]
        page.locator("#attempts summary").first.click()
        assert "SMTPDataError" in page.locator("#attempts pre.traceback").first.inner_text()
        browser.close()
