"""/admin/schedules: each periodic job's interval, last and next run, outcome."""

from __future__ import annotations

from app.scheduling import lease, ticks


def test_schedules_page_needs_an_admin(app, client, user_client):
    assert client.get("/admin/schedules").headers["Location"].startswith("/login")
    assert user_client.get("/admin/schedules").status_code == 403


def test_schedules_page_shows_every_schedule_and_warns_about_overdue_ones(
    app, admin_client, stub_broker
):
    with app.app_context():
        ticks.ensure_rows()
        lease.acquire("host:123:abc", 30)
        ticks.run_due("cleanup")
    html = admin_client.get("/admin/schedules").get_data(as_text=True)
    for name in ("resend_failed_emails", "cleanup", "relay"):
        assert f'data-name="{name}"' in html
    assert "host:123:abc" in html
    cleanup_row = html.split('data-name="cleanup"')[1].split("</tr>")[0]
    relay_row = html.split('data-name="relay"')[1].split("</tr>")[0]
    assert "job queued" in cleanup_row and "has not run" not in cleanup_row
    assert "never ran" in relay_row and "has not run for over" in relay_row


def test_schedules_page_says_when_no_scheduler_leads(app, admin_client):
    html = admin_client.get("/admin/schedules").get_data(as_text=True)
    assert "No scheduler holds the lease" in html
