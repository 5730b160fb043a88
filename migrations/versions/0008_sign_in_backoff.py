"""sign-in backoff per client and per (account, client) pair

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('sign_in_backoff',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sign_in_backoff'))
    )
    with op.batch_alter_table('sign_in_backoff', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sign_in_backoff_last_failure_at'), ['last_failure_at'], unique=False)


def downgrade():
    with op.batch_alter_table('sign_in_backoff', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sign_in_backoff_last_failure_at'))
    op.drop_table('sign_in_backoff')
