"""Every maintenance service has the one shape, the schedule table is built from
them, and each pass reports its counts as data and in one log line."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import dramatiq
import pytest

import app.maintenance
from app import metrics
from app.jobs import kinds
from app.maintenance.service import Service
from app.scheduling.schedules import SCHEDULES, Schedule

MODULES = [
    importlib.import_module(f"app.maintenance.{info.name}")
    for info in pkgutil.iter_modules(app.maintenance.__path__)
    if info.name != "service"
]
SERVICES = [module.SERVICE for module in MODULES]


def test_every_module_of_the_folder_declares_one_service():
    assert all(isinstance(service, Service) for service in SERVICES)
    assert {service.name for service in SERVICES} == {
        "relay",
        "rescue",
        "resend_failed_emails",
        "cleanup",
        "scheduled",
    }


def test_the_schedule_table_runs_every_service_once_under_the_contracts_names():
    scheduled = [service for schedule in SCHEDULES for service in schedule.services]
    assert sorted(scheduled, key=id) == sorted(SERVICES, key=id)
    assert [(s.name, s.interval_setting) for s in SCHEDULES] == [
        ("resend_failed_emails", "RESEND_INTERVAL_S"),
        ("cleanup", "CLEANUP_INTERVAL_S"),
        ("relay", "RELAY_INTERVAL_S"),
    ]


def test_relay_and_rescue_run_in_the_scheduler_and_the_others_as_their_jobs(app):
    by_name = {service.name: service for service in SERVICES}
    assert by_name["relay"].kind is None and by_name["rescue"].kind is None
    for name in ("resend_failed_emails", "cleanup"):
        kind = by_name[name].kind
        assert kind.actor == name and kind.queue == "maintenance"
        with app.app_context():
            assert kinds.of(name) is kind  # registered by the app factory
        actor = dramatiq.get_broker().get_actor(name)
        assert actor.queue_name == kind.queue


def test_each_interval_setting_and_metric_exists(app):
    with app.app_context():
        rendered = metrics.render().decode()
        for service in SERVICES:
            assert service.interval_s == app.config[service.interval_setting] >= 1
    for service in SERVICES:
        for name in service.metrics:
            assert f"# TYPE {name} gauge" in rendered, (service.name, name)


@pytest.mark.parametrize("service", SERVICES, ids=[s.name for s in SERVICES])
def test_a_pass_returns_its_counts_and_logs_them_in_one_line(
    app, stub_broker, caplog, monkeypatch, service
):
    # Alembic's logging configuration (a migration run by an earlier test) disables
    # the loggers that exist by then.
    monkeypatch.setattr(logging.getLogger(service.run.__module__), "disabled", False)
    caplog.set_level(logging.DEBUG, logger=service.run.__module__)
    with app.app_context():
        summary = service.run_once()
    assert summary and all(isinstance(count, int) for count in summary.values())
    [line] = [r for r in caplog.records if getattr(r, "service", None) == service.name]
    assert line.counts == summary
    assert line.getMessage() == service.name + ": " + ", ".join(
        f"{what} {count}" for what, count in summary.items()
    )
    assert line.levelno == (logging.INFO if any(summary.values()) else logging.DEBUG)


def test_a_pass_that_did_something_logs_at_info(app, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger(__name__), "disabled", False)
    caplog.set_level(logging.INFO, logger=__name__)
    busy = Service("busy", "RELAY_INTERVAL_S", lambda: {"moved": 2, "kept": 0})
    assert busy.run_once() == {"moved": 2, "kept": 0}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, "busy: moved 2, kept 0")
    ]


def test_a_tick_refuses_services_that_cannot_share_it():
    relay, rescue, resend = (
        next(s for s in SERVICES if s.name == name)
        for name in ("relay", "rescue", "resend_failed_emails")
    )
    with pytest.raises(ValueError, match="shares no tick"):
        Schedule.of(resend, rescue)
    other = Service("other", "CLEANUP_INTERVAL_S", relay.run)
    with pytest.raises(ValueError, match="share its interval"):
        Schedule.of(relay, other)
