"""email batches: a batch queued with an Idempotency-Key keeps its emails'
order, so that a repeat answers them all (the first email holds the key)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('batch_index', sa.Integer(), nullable=True))
        batch_op.create_index(
            'ix_emails_batch',
            ['batch_id', 'batch_index'],
            unique=False,
            sqlite_where=sa.text('batch_id IS NOT NULL'),
            postgresql_where=sa.text('batch_id IS NOT NULL'),
        )


def downgrade():
    with op.batch_alter_table('emails', schema=None) as batch_op:
        batch_op.drop_index('ix_emails_batch')
        batch_op.drop_column('batch_index')
        batch_op.drop_column('batch_id')
