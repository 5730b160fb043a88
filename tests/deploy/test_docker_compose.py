"""deploy/docker-compose.yml and its Dockerfile."""

from __future__ import annotations

import subprocess

import yaml

from tests.deploy.conftest import DEPLOY, ROOT

COMPOSE = DEPLOY / "docker-compose.yml"


def test_compose_file_passes_docker_compose_config(tool):
    docker_compose = tool("docker-compose", "docker-compose")

    result = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert (result.returncode, result.stderr) == (0, "")


def test_compose_runs_every_process_with_quorum_queues_and_a_scalable_worker():
    services = yaml.safe_load(COMPOSE.read_text())["services"]

    assert {"rabbitmq", "postgres", "web", "worker", "scheduler", "mail"} <= set(services)
    assert "management" in services["rabbitmq"]["image"]
    worker = services["worker"]
    # --scale worker=N needs no fixed name and no published port
    assert "container_name" not in worker and "ports" not in worker
    for name in ("web", "worker", "scheduler"):
        assert services[name]["environment"]["BROKER_QUEUE_TYPE"] == "quorum", name
    command = worker["command"]
    shutdown_ms = int(command[command.index("--worker-shutdown-timeout") + 1])
    assert worker["stop_grace_period"] == "11m" and shutdown_ms < 11 * 60_000


def test_dockerfile_installs_the_pinned_requirements():
    text = (DEPLOY / "Dockerfile").read_text()

    assert "pip install -r requirements.txt" in text
    assert "For a real site" in text
