"""Export rows in awkward states, for tests."""

from __future__ import annotations

from app.db import db
from app.models import Export, Job


def failed_export_and_a_running_one(app, client, headers) -> tuple[str, str]:
    """A failed export job, and a second export of the same kind now queued."""
    first = client.post("/api/exports", json={"kind": "posts", "format": "csv"}, headers=headers)
    with app.app_context():
        job = db.session.get(Job, first.json["job_id"])
        job.status = "failed"
        db.session.get(Export, first.json["export_id"]).status = "failed"
        db.session.commit()
    second = client.post("/api/exports", json={"kind": "posts", "format": "json"}, headers=headers)
    assert second.status_code == 202
    return first.json["job_id"], second.json["job_id"]
