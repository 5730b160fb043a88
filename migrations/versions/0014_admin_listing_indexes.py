"""indexes that let the failed emails page and the error groups read only what they show

The failed emails page walks emails newest first: without ``(created_at, id)``
it sorted every unsent email on each view. The error groups count from their
partial index alone once it also holds ``created_at`` and ``id`` (their first
and last seen, and their sample job), instead of reading each failed job's row.

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


def downgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_error_groups")
        _error_groups_index(batch_op, include=[])
    with op.batch_alter_table("emails", schema=None) as batch_op:
        batch_op.drop_index("ix_emails_created")
