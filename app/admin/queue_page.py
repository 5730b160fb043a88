"""/admin/queues: each queue's counts, paused or not, with Pause and Resume."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for

from app import queues
from app.admin import live
from app.admin.blueprint import admin
from app.web.session import admin_required


@admin.get("/queues")
@admin_required
def queue_list():
    found = queues.states()
    version = live.version_of([(q.name, q.paused, q.queued, q.running, q.retrying) for q in found])
    return live.conditional(
        version,
        lambda version: render_template("admin/queues.html", version=version, queues=found),
    )


@admin.post("/queues/<name>/pause")
@admin_required
def pause_queue(name: str):
    return _change(name, queues.pause, "paused: no new attempt starts on it", "was paused already")


@admin.post("/queues/<name>/resume")
@admin_required
def resume_queue(name: str):
    return _change(
        name, queues.resume, "resumed: its jobs are published again shortly", "was not paused"
    )


def _change(name: str, change, done: str, unchanged: str):
    try:
        changed = change(name)
    except queues.UnknownQueue:
        abort(404)
    flash(f"Queue {name} {done if changed else unchanged}.")
    return redirect(url_for("admin.queue_list"), 303)
