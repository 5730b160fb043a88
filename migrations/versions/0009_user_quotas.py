"""user quotas: which emails a user queued (USER_EMAILS_PER_HOUR counts them),
and the index that counts them

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # Emails from before quotas count as the app's own: a user's first hour
    # under the quota starts empty rather than charged for export deliveries.
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('user_queued', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(
            'ix_emails_user_queued_created', ['user_id', 'user_queued', 'created_at'], unique=False
        )


def downgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.drop_index('ix_emails_user_queued_created')
        batch_op.drop_column('user_queued')
