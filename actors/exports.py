import dramatiq

from app.exports.service import RUN_EXPORT, run


@dramatiq.actor(**RUN_EXPORT.actor_options())
def run_export(export_id: str) -> None:
    """Write one export and queue the email that delivers it; safe to run twice."""
    run(export_id)
