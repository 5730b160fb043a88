"""Every Dramatiq actor. ``dramatiq actors`` imports this package: the broker
first (``broker.py`` makes the app's broker, built from its configuration, the
process's broker), then the actors, which are declared on it."""

import broker  # noqa: F401  (sets up the broker before any actor is declared)
from actors.bulk import bulk_action
from actors.emails import send_email
from actors.exports import run_export
from actors.maintenance import cleanup, resend_failed_emails

__all__ = ["bulk_action", "cleanup", "resend_failed_emails", "run_export", "send_email"]
