"""app/jobs/kinds.py: the kinds the app registers, and their hooks."""

from __future__ import annotations

import pytest

from app.db import db
from app.jobs import kinds
from app.jobs.kinds import JobKind

HOOKS = ("on_claimed", "on_succeeded", "on_given_up", "on_requeued")


def test_the_app_registers_every_kind_its_actors_declare(app, stub_broker):
    registry = kinds.registry(app)
    assert set(registry) == {
        "send_email",
        "run_export",
        "resend_failed_emails",
        "cleanup",
        "bulk_action",
    }
    for actor, kind in registry.items():
        declared = stub_broker.get_actor(actor)
        assert (declared.queue_name, declared.options["time_limit"]) == (
            kind.queue,
            kind.time_limit_ms,
        )
    assert registry.queues == ("emails", "exports", "maintenance")


@pytest.mark.parametrize("actor", ["send_email", "run_export", "resend_failed_emails", "cleanup"])
def test_every_hook_of_every_kind_runs_in_a_transaction(app, actor):
    with app.app_context():
        kind = kinds.registry()[actor]
        for hook in HOOKS:
            target = getattr(kind, hook)
            if target is not None:
                target(["no-such-job"])  # a hook of jobs that changed nothing else
        assert kind.max_retries >= 0
        db.session.rollback()


def test_two_kinds_of_one_name_are_refused(app):
    with pytest.raises(ValueError, match="send_email"):
        kinds.register(app, JobKind("send_email", "elsewhere", time_limit_ms=1))


def test_an_actor_of_no_kind_has_no_hooks(app):
    with app.app_context():
        kind = kinds.of("no_such_actor")
        assert all(getattr(kind, hook) is None for hook in HOOKS)
        kind.given_up(["x"])  # nothing to run
