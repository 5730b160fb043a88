"""In a real Chromium, against a real worker, RabbitMQ, PostgreSQL and SMTP server:
a person requests an export on ``/`` and watches its progress, rows and size, and
then its delivery email in Recent emails, update without a reload; the page fits
a 1280 px and a 420 px wide screen (screenshots in test-artifacts/)."""

from __future__ import annotations

import re

import pytest

from app import auth
from app.seed import seed_posts
from tests.support.browser import ARTIFACTS, LiveServer, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq, pytest.mark.postgres]
sync_api = pytest.importorskip("playwright.sync_api")

NARROW = 420


@pytest.fixture()
def server(live_app):
    live_app.config["PUBLIC_URL"] = "http://127.0.0.1"
    server = LiveServer(live_app).start()
    yield server
    server.stop()


def _cell(page, table: str, field: str) -> str:
    return page.locator(f"#{table} tbody tr").first.locator(f'[data-field="{field}"]').inner_text()


def test_export_progress_rows_size_and_its_email_update_live_at_1280_and_420_px(
    live_app, rabbit_broker, start_worker, server
):
    ARTIFACTS.mkdir(exist_ok=True)
    with live_app.app_context():
        user = auth.create_user("hana.longname.for.a.narrow.screen@example.com", "secret pw")
        seed_posts(user.id, 4000)
    start_worker("tests.support.slow_export")  # about ten seconds of export to watch

    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        polls: list[tuple[int, str | None]] = []
        page.on(
            "response",
            lambda r: (
                "/exports.json" in r.url
                and polls.append((r.status, r.request.headers.get("if-none-match")))
            ),
        )
        # Given a signed-in user
        page.goto(f"{server.url}/login")
        page.fill("input[name=email]", "hana.longname.for.a.narrow.screen@example.com")
        page.fill("input[name=password]", "secret pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")

        # When they ask for a CSV export
        page.click("button[data-export=csv]")
        page.wait_for_url(f"{server.url}/")
        page.evaluate("window.notReloaded = true")

        # Then progress and the rows written so far move while it runs
        page.wait_for_function(
            "() => { const row = document.querySelector('#exports tbody tr');"
            " const bar = row.querySelector('progress');"
            " const rows = Number(row.querySelector('[data-field=rows]').textContent);"
            " return bar.value > 0 && bar.value < 100 && rows > 0 && rows < 4000; }",
            timeout=30_000,
        )
        assert _cell(page, "exports", "status") == "running"
        page.screenshot(path=str(ARTIFACTS / "live-page-1280-running.png"), full_page=True)

        # and once it is written: every row, its size as people read it, a download link
        page.locator("#exports a.download").wait_for(timeout=60_000)
        assert _cell(page, "exports", "rows") == "4000"
        size = page.locator('#exports tbody tr [data-field="bytes"]').first
        assert re.fullmatch(r"\d+\.\d (KB|MB)", size.inner_text()), size.inner_text()
        assert re.fullmatch(r"\d+ bytes", size.get_attribute("title"))

        # and its delivery email appears in Recent emails, and becomes sent
        page.wait_for_function(
            "() => { const s = document.querySelector('#emails tbody tr [data-field=status]');"
            " return s && s.textContent === 'sent'; }",
            timeout=30_000,
        )
        assert _cell(page, "emails", "attempts") == "1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", _cell(page, "emails", "sent"))
        assert page.evaluate("window.notReloaded") is True
        page.screenshot(path=str(ARTIFACTS / "live-page-1280.png"), full_page=True)

        # The polls were conditional: each sent the version it had
        assert polls and all(etag and etag.startswith('W/"') for _, etag in polls)
        assert {status for status, _ in polls} <= {200, 304}

        # At 420 px wide nothing is wider than the screen: tables scroll in their box
        page.set_viewport_size({"width": NARROW, "height": 900})
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW
        too_wide = page.evaluate(
            """(width) => [...document.querySelectorAll('body *')]
                .filter((e) => !e.closest('.table-wrap') || e.matches('.table-wrap'))
                .filter((e) => e.getBoundingClientRect().right > width + 0.5)
                .map((e) => e.tagName + '.' + e.className)""",
            NARROW,
        )
        assert too_wide == []
        page.screenshot(path=str(ARTIFACTS / "live-page-420.png"), full_page=True)
        browser.close()
