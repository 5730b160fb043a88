"""cancelling a running export: the job's cancel request, and the export state cancelled

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'expired')"
OLD_STATUSES = "status IN ('queued', 'running', 'succeeded', 'failed', 'expired')"


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_exports_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_exports_status"), STATUSES)


def downgrade():
    op.execute("UPDATE exports SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("exports", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_exports_status"), type_="check")
        batch_op.create_check_constraint(op.f("ck_exports_status"), OLD_STATUSES)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("cancel_requested")
