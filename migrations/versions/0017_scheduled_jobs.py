"""scheduled jobs: the state ``scheduled`` and when each is due

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

STATUSES = (
    "status IN ('scheduled', 'queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')"
)
OLD_STATUSES = "status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')"
SCHEDULED = "status = 'scheduled'"


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_jobs_status"), STATUSES)
        batch_op.create_index(
            "ix_jobs_scheduled",
            ["scheduled_for"],
            postgresql_where=sa.text(SCHEDULED),
            sqlite_where=sa.text(SCHEDULED),
        )


def downgrade():
    op.execute("UPDATE jobs SET status = 'cancelled' WHERE status = 'scheduled'")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_scheduled")
        batch_op.drop_constraint(op.f("ck_jobs_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_jobs_status"), OLD_STATUSES)
        batch_op.drop_column("scheduled_for")
