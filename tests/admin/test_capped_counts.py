"""Status counts stop at a cap, so a page over a million jobs costs no full scan."""

from __future__ import annotations

import re

import pytest

import app.admin.blueprint
import app.admin.jobs
from tests.admin.conftest import make_job


@pytest.fixture()
def cap_of_two(monkeypatch):
    monkeypatch.setattr(app.admin.blueprint, "COUNT_CAP", 2)
    monkeypatch.setattr(app.admin.jobs, "COUNT_CAP", 2)


def _count(html: str, label: str) -> str:
    return re.search(rf'<span class="n">([^<]+)</span><span class="label">{label}</span>', html)[1]


def test_counts_past_the_cap_show_as_a_lower_bound(app, admin_client, cap_of_two):
    for minute in range(4):
        make_job(app, status="failed", minutes=minute)
    make_job(app, status="queued")
    html = admin_client.get("/admin/jobs").get_data(as_text=True)
    assert _count(html, "failed") == "2+"
    assert _count(html, "queued") == "1"


def test_search_counts_are_lower_bounds_once_matches_pass_the_cap(app, admin_client, cap_of_two):
    for minute in range(3):
        make_job(app, status="failed", minutes=minute, error_type="TimeoutError")
    make_job(app, status="failed", error_type="OtherError")
    html = admin_client.get("/admin/jobs?q=timeout").get_data(as_text=True)
    assert _count(html, "failed").endswith("+")
    exact = admin_client.get("/admin/jobs?q=other").get_data(as_text=True)
    assert _count(exact, "failed") == "1"
