"""indexes that let the failed emails page, the error groups and the overview read only what they show

The failed emails page walks emails newest first: without ``(created_at, id)``
it sorted every unsent email on each view. The error groups count from their
partial index alone once it also holds ``created_at`` and ``id`` (their first
and last seen, and their sample job), instead of reading each failed job's row.
The overview counts what finished in a window, and reads each finished job's
wait, from ``ix_jobs_finished``, the retried attempts from
``ix_job_attempts_finished``, and each queue's waiting jobs from
``ix_jobs_status_created``, which now holds their queue.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

HAS_GROUP = "error_group IS NOT NULL"


def _error_groups_index(batch_op, *, include: list[str]) -> None:
    batch_op.create_index(
        "ix_jobs_error_groups",
        ["status", "error_group", "finished_at"],
        postgresql_where=sa.text(HAS_GROUP),
        sqlite_where=sa.text(HAS_GROUP),
        postgresql_include=include,
    )


def upgrade():
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.create_index("ix_emails_created", ["created_at", "id"], unique=False)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_error_groups")
        _error_groups_index(batch_op, include=["created_at", "id"])
        batch_op.create_index(
            "ix_jobs_finished",
            ["finished_at", "actor", "status"],
            postgresql_include=["attempts", "started_at", "created_at"],
        )
        batch_op.drop_index("ix_jobs_status_created")
        batch_op.create_index(
            "ix_jobs_status_created",
            ["status", "created_at", "id"],
            postgresql_include=["queue"],
        )
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_job_attempts_finished",
            ["finished_at"],
            postgresql_include=["job_id", "attempt", "outcome"],
        )


def downgrade():
    with op.batch_alter_table("job_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_job_attempts_finished")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_status_created")
        batch_op.create_index("ix_jobs_status_created", ["status", "created_at", "id"])
        batch_op.drop_index("ix_jobs_finished")
        batch_op.drop_index("ix_jobs_error_groups")
        _error_groups_index(batch_op, include=[])
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index("ix_emails_created")
