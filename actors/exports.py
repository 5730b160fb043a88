import dramatiq

from app.exports.service import run
from app.jobs.errors import PermanentError
from app.jobs.kinds import actor_options


@dramatiq.actor(**actor_options("run_export"), throws=(PermanentError,))
def run_export(export_id: str) -> None:
    """Write one export and queue the email that delivers it; safe to run twice."""
    run(export_id)
