"""The states of jobs, emails and exports, and the groups that rules are written in.

Each state is a ``StrEnum``: it is the string stored in the row and shown in the
API, so it compares equal to what a query returns and goes into SQL as it is.
A rule about states names a group here ("an unfinished job") rather than
listing states where it is used.
"""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    # Waiting in the database for its ``scheduled_for``; then queued by the relay.
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EmailStatus(StrEnum):
    """Derived from the email's ``sent_at`` and its current job (``app/emails.py``)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Stopped by a cancel (queued, or running: at its next batch), with no file.
    CANCELLED = "cancelled"
    # Succeeded, and its file has since been deleted by the cleanup.
    EXPIRED = "expired"


# A job a worker may claim: waiting for its first attempt or for its next one.
CLAIMABLE = (JobStatus.QUEUED, JobStatus.RETRYING)
# A job that will still run, or is running.
UNFINISHED = (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.RETRYING)
# A job that will never run again unless someone asks.
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
# A job that ended without succeeding: what "Retry" queues again.
RETRYABLE = (JobStatus.FAILED, JobStatus.CANCELLED)
# A job that has not started, or has given up: what "Cancel" stops.
CANCELLABLE = (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.RETRYING, JobStatus.FAILED)

# An export whose file is still to be written.
UNFINISHED_EXPORTS = (ExportStatus.QUEUED, ExportStatus.RUNNING)
