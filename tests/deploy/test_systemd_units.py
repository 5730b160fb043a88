"""deploy/systemd/*.service pass ``systemd-analyze verify``."""

from __future__ import annotations

import re
import subprocess

from tests.deploy.conftest import DEPLOY, ROOT

UNITS = ["web.service", "worker@.service", "scheduler.service"]


def test_units_pass_systemd_analyze_verify(tool, tmp_path):
    systemd_analyze = tool("systemd-analyze", "systemd")
    # As installed at this checkout: the units' /srv/jobsapp is where the code lives,
    # and verify checks that ExecStart's programs exist.
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace("/srv/jobsapp", str(ROOT))
        (tmp_path / name.replace("@.", "@1.")).write_text(text)

    result = subprocess.run(
        [systemd_analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )

    ours = [
        line for line in result.stderr.splitlines() if str(tmp_path) in line or ".service" in line
    ]
    assert (result.returncode, ours) == (0, [])


def test_every_unit_sets_quorum_queues_and_says_what_to_change():
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text()
        assert "Environment=BROKER_QUEUE_TYPE=quorum" in text, name
        assert "For a real site" in text, name


def test_worker_stop_timeout_outlasts_the_shutdown_timeout():
    text = (DEPLOY / "systemd" / "worker@.service").read_text()
    shutdown_ms = int(re.search(r"^ExecStart=.*--worker-shutdown-timeout (\d+)", text, re.M)[1])
    stop_s = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.M)[1])

    assert stop_s * 1000 > shutdown_ms
    assert "KillMode=mixed" in text


def test_worker_metrics_listen_on_loopback_only():
    # The worker's metrics port has no token: off the network unless the operator says so.
    text = (DEPLOY / "systemd" / "worker@.service").read_text()

    assert re.search(r"^Environment=dramatiq_prom_host=127\.0\.0\.1$", text, re.M)
    assert "0.0.0.0" not in text
