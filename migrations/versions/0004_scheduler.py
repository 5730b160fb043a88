"""scheduler

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 20:08:30.726123

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('scheduler_lease',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_lease'))
    )
    op.create_table('schedules',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.Column('last_tick_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.String(length=36), nullable=True),
    sa.Column('last_outcome', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_schedules'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unique_key', sa.String(length=100), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_jobs_unique_key'), ['unique_key'])



def downgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_jobs_unique_key'), type_='unique')
        batch_op.drop_column('unique_key')

    op.drop_table('schedules')
    op.drop_table('scheduler_lease')
