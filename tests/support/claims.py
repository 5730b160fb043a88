"""Claiming a job as a worker would, for tests that drive the state module directly."""

from __future__ import annotations

import uuid

from app.jobs import attempts, durable


def claim(job_id: str, *, series: int = 0, worker_id: str = "test-worker") -> attempts.Claim | None:
    return durable.write(
        attempts.start_attempt, job_id, series=series, worker_id=worker_id, token=uuid.uuid4().hex
    )
