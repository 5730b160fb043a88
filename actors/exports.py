import dramatiq

from app import config
from app.exports.service import run
from app.jobs.errors import PermanentError

_settings = config.from_env()

# A million rows take well under this; the default 10 minutes would cut big exports.
EXPORT_TIME_LIMIT_MS = 2 * 60 * 60 * 1000


@dramatiq.actor(
    queue_name="exports",
    max_retries=_settings["EXPORT_MAX_RETRIES"],
    min_backoff=_settings["RETRY_MIN_BACKOFF_MS"],
    max_backoff=_settings["RETRY_MAX_BACKOFF_MS"],
    time_limit=EXPORT_TIME_LIMIT_MS,
    throws=(PermanentError,),
)
def run_export(export_id: str) -> None:
    """Write one export and queue the email that delivers it; safe to run twice."""
    run(export_id)
