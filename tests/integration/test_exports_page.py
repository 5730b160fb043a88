"""A person signs in, clicks an export button, and watches the bar reach 100%."""

from __future__ import annotations

import pytest

from app import auth
from app.seed import seed_posts
from tests.support.browser import ARTIFACTS, LiveServer, launch_chromium

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq, pytest.mark.postgres]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture()
def server(live_app):
    live_app.config["PUBLIC_URL"] = "http://127.0.0.1"
    server = LiveServer(live_app).start()
    yield server
    server.stop()


def test_export_button_shows_progress_until_the_download_link(
    live_app, rabbit_broker, start_worker, server
):
    with live_app.app_context():
        user = auth.create_user("hana@example.com", "secret pw")
        seed_posts(user.id, 4000)
    start_worker("tests.support.slow_export")  # about ten seconds of export to watch

    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        # Given a signed-in user
        page.goto(f"{server.url}/")
        assert page.url.startswith(f"{server.url}/login")
        page.fill("input[name=email]", "hana@example.com")
        page.fill("input[name=password]", "secret pw")
        page.click("button[type=submit]")
        page.wait_for_url(f"{server.url}/")

        # When they click the CSV button
        page.click("button[data-export=csv]")
        bar = page.locator("#exports tbody tr").first.locator("progress")

        # Then the bar moves without a reload, reaches 100%, and a download link appears
        page.evaluate("window.notReloaded = true")
        page.wait_for_function(
            "() => { const b = document.querySelector('#exports progress');"
            " return b && b.value > 0 && b.value < 100; }",
            timeout=30_000,
        )
        page.locator("#exports a.download").wait_for(timeout=60_000)
        assert bar.evaluate("b => b.value") == 100
        assert page.evaluate("window.notReloaded") is True
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "exports-page.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#exports a.download")
        assert download.value.suggested_filename.endswith(".csv")
        browser.close()
