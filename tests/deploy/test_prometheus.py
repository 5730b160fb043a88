"""deploy/prometheus/: the scrape configuration and the alert rules."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.conftest import DEPLOY

RULES = DEPLOY / "prometheus" / "alerts.yml"
CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
# Series the rules read: the web's /metrics (app/metrics.py) and the workers' own.
EXPECTED_ALERTS = {
    "JobsFailedRising": "jobs",
    "OutboxBacklogGrowing": "jobs_unpublished",
    "OldestQueuedJobTooOld": "jobs_oldest_queued_age_seconds",
    "ScheduleNotRunning": "schedule_last_run_age_seconds",
}


def test_promtool_accepts_the_rules_and_the_config(tool):
    promtool = tool("promtool", "prometheus")

    for args in (["check", "rules", str(RULES)], ["check", "config", str(CONFIG)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_rules_parse_and_cover_each_required_alert():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}

    for alert, series in EXPECTED_ALERTS.items():
        assert series in rules[alert]["expr"], alert
    for rule in rules.values():
        assert {"expr", "labels", "annotations"} <= set(rule), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}


def test_scrape_config_reads_the_web_and_the_workers():
    config = yaml.safe_load(CONFIG.read_text())

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["jobsapp-web"]["metrics_path"] == "/metrics"
    assert "127.0.0.1:9191" in jobs["jobsapp-worker"]["static_configs"][0]["targets"]
    assert config["rule_files"] == ["alerts.yml"]
