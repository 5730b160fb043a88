import dramatiq

from app.bulk_actions import BULK_ACTION, run


@dramatiq.actor(**BULK_ACTION.actor_options())
def bulk_action(job_id: str) -> dict:
    """Retry or cancel every job its row's filter matches (see app.bulk_actions)."""
    return run(job_id)
