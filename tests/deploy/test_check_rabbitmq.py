"""deploy/check_rabbitmq.py asks every node of BROKER_URL, on real RabbitMQ
nodes and closed ports, and never prints the broker's password."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.services import RABBITMQ_HOST, RABBITMQ_PORT, free_port

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "check_rabbitmq.py"

pytestmark = pytest.mark.rabbitmq


@pytest.fixture()
def script():
    spec = importlib.util.spec_from_file_location("check_rabbitmq", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _no_local_server(monkeypatch, script, which) -> None:
    """The script's own ``shutil`` looks for rabbitmq-server with ``which``: the
    real module stays as it is for the threads of other fixtures."""
    monkeypatch.setattr(script, "shutil", SimpleNamespace(which=which))


def _closed(vhost_name: str = "%2F", password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:{free_port()}/{vhost_name}"


@pytest.mark.parametrize("live_first", [True, False], ids=["live-first", "closed-first"])
def test_a_cluster_url_is_reachable_when_one_of_its_nodes_answers(
    script, vhost, monkeypatch, live_first
):
    # Given a two-node BROKER_URL: the local RabbitMQ, and a port nothing listens on
    nodes = [vhost.url(), _closed(vhost.name)]
    monkeypatch.setenv("BROKER_URL", ",".join(nodes if live_first else nodes[::-1]))
    _no_local_server(monkeypatch, script, lambda _: pytest.fail("would start RabbitMQ"))

    # Then the check passes without trying to start a server
    assert script.main() == 0


def test_a_vhost_is_looked_up_by_each_node_s_own_path(script, vhost):
    # Given the test's vhost, which exists, and a name that does not
    missing = f"{vhost.name}_missing"

    # Then each node is asked for the vhost in its own URL, nothing of the next node's
    assert script.reachable(f"{vhost.url()},{vhost.url()}")
    assert not script.reachable(
        f"amqp://guest:guest@{RABBITMQ_HOST}:{RABBITMQ_PORT}/{missing},{_closed(vhost.name)}"
    )


def test_an_unreachable_cluster_is_reported_without_its_password(script, monkeypatch, capsys):
    # Given a BROKER_URL whose every node is a closed port, and no local rabbitmq-server
    url = f"{_closed('prod', 'hunter2-secret')},{_closed('prod', 'hunter2-secret')}"
    monkeypatch.setenv("BROKER_URL", url)
    _no_local_server(monkeypatch, script, lambda _: None)

    # When the check runs
    assert script.main() == 1

    # Then it says so, with each password masked
    printed = capsys.readouterr()
    assert "hunter2-secret" not in printed.out + printed.err
    assert script.masked(url) in printed.err
    assert script.masked(url).count("amqp://guest:***@127.0.0.1:") == 2


def test_a_url_without_a_password_is_shown_as_it_is(script):
    assert script.masked("amqp://rabbit:5672/%2F") == "amqp://rabbit:5672/%2F"
