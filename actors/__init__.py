"""Every Dramatiq actor. ``dramatiq actors`` imports this package: the broker
first (from ``broker.py``, configured by the environment), then the actors."""

import broker  # noqa: F401  (sets up the broker before any actor is declared)
from actors.emails import send_email
from actors.exports import run_export
from actors.maintenance import cleanup, resend_failed_emails

__all__ = ["cleanup", "resend_failed_emails", "run_export", "send_email"]
