"""deploy/check_rabbitmq.py never prints the broker's password."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "check_rabbitmq.py"


@pytest.fixture()
def script():
    spec = importlib.util.spec_from_file_location("check_rabbitmq", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_unreachable_broker_is_reported_without_its_password(script, monkeypatch, capsys):
    url = "amqp://jobs:hunter2-secret@rabbit-a:5672/prod,amqp://jobs:hunter2-secret@rabbit-b/prod"
    monkeypatch.setenv("BROKER_URL", url)
    monkeypatch.setattr(script, "reachable", lambda _: False)
    monkeypatch.setattr(script.shutil, "which", lambda _: None)

    assert script.main() == 1

    printed = capsys.readouterr()
    assert "hunter2-secret" not in printed.out + printed.err
    assert "amqp://jobs:***@rabbit-a:5672/prod,amqp://jobs:***@rabbit-b/prod" in printed.err


def test_a_url_without_a_password_is_shown_as_it_is(script):
    assert script.masked("amqp://rabbit:5672/%2F") == "amqp://rabbit:5672/%2F"
