"""/metrics: the series operators need, at a cost that does not grow with the
number of jobs, behind METRICS_TOKEN when one is set."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from app import metrics
from app.db import db
from tests.support import factories


def _add_jobs(app, n: int, *, status="queued", actor="send_email") -> None:
    with app.app_context():
        for _ in range(n):
            factories.job(actor, status=status)
        db.session.commit()


def _scrape(app, client) -> tuple[str, list[str]]:
    """The scrape's text and every SQL statement it ran."""
    statements = []
    with app.app_context():
        engine = db.engine

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        text = client.get("/metrics").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return text, statements


def test_metrics_show_jobs_backlog_oldest_queued_and_failed_emails(app, client):
    _add_jobs(app, 2)
    _add_jobs(app, 1, status="failed", actor="run_export")
    text, _ = _scrape(app, client)
    assert 'jobs{actor="send_email",status="queued"} 2.0' in text
    assert 'jobs{actor="run_export",status="failed"} 1.0' in text
    assert "jobs_unpublished 2.0" in text
    assert re.search(r"^jobs_oldest_queued_age_seconds \d", text, re.M)
    assert "emails_failed 0.0" in text


def test_a_scrape_runs_the_same_bounded_queries_at_any_number_of_jobs(app, client, monkeypatch):
    monkeypatch.setattr(metrics, "COUNT_CAP", 5)
    _add_jobs(app, 3)
    few_text, few = _scrape(app, client)
    _add_jobs(app, 40)
    many_text, many = _scrape(app, client)

    # The same statements, however many jobs there are
    assert few == many
    # and none of them counts the jobs table without a bound
    for statement in many:
        if "FROM jobs" in statement and "count(" in statement.lower():
            assert "LIMIT" in statement, statement
        assert "GROUP BY" not in statement, statement
    # so counts stop at the cap, which the scrape states
    assert 'jobs{actor="send_email",status="queued"} 3.0' in few_text
    assert 'jobs{actor="send_email",status="queued"} 5.0' in many_text
    assert "jobs_count_cap 5.0" in many_text


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer wrong", 401),
        ("Basic bWV0cmljcw==", 401),
        ("Bearer m-token", 200),
        # non-ASCII bearers once raised TypeError in compare_digest: a 500
        ("Bearer m-tökén", 401),
        ("Bearer \u00e9\u00e9", 401),
        ("B\u00e9arer m-token", 401),
    ],
)
def test_metrics_want_the_metrics_token_when_one_is_set(app, client, authorization, status):
    app.config["METRICS_TOKEN"] = "m-token"
    headers = {"Authorization": authorization} if authorization else {}
    assert client.get("/metrics", headers=headers).status_code == status


def test_a_non_ascii_metrics_token_matches_its_utf8_bytes(app, client):
    app.config["METRICS_TOKEN"] = "jeton-süß"
    # A WSGI header is its bytes read as Latin-1: the UTF-8 a client sends
    on_the_wire = "jeton-süß".encode().decode("latin-1")

    assert (
        client.get("/metrics", headers={"Authorization": f"Bearer {on_the_wire}"}).status_code
        == 200
    )
    refused = client.get("/metrics", headers={"Authorization": "Bearer jeton-süß"})
    assert refused.status_code == 401 and refused.get_json()["error"]


PROMQL_WORDS = {"up", "sum", "by", "rate", "delta", "on"}


def test_every_series_the_alert_rules_use_is_exported(app, client):
    """deploy/prometheus/alerts.yml names only series that the web's /metrics
    (parsed with prometheus_client's parser) or Dramatiq's worker metrics export."""
    from pathlib import Path

    import yaml
    from prometheus_client.parser import text_string_to_metric_families

    from app.db import utcnow
    from app.models import ScheduleState

    _add_jobs(app, 1, status="failed")
    with app.app_context():
        db.session.add(ScheduleState(name="relay", interval_s=10, last_run_at=utcnow()))
        db.session.commit()
    exported = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True))
        for sample in family.samples
    }
    rules = yaml.safe_load((Path(__file__).parents[1] / "deploy/prometheus/alerts.yml").read_text())
    used = {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in re.findall(r"\b([a-z_]+)(?=\{|\[| >| \)|$)", rule["expr"])
        if not name.startswith("dramatiq_") and name not in PROMQL_WORDS
    }
    assert used and used <= exported, used - exported
