"""bulk actions as jobs, error groups and the audit log

``jobs.error_group`` is written with a job's error; the partial index holds only
jobs that have one, so a successful job's state changes never touch it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 11:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

HAS_GROUP = "error_group IS NOT NULL"


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('error_group', sa.String(length=16), nullable=True))
        batch_op.create_index(
            'ix_jobs_error_groups',
            ['status', 'error_group', 'finished_at'],
            postgresql_where=sa.text(HAS_GROUP),
            sqlite_where=sa.text(HAS_GROUP),
        )
    op.create_table(
        'audit_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('user_email', sa.String(length=254), nullable=True),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('target', sa.JSON(), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_audit_log_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at', 'id'], unique=False)
    op.create_table(
        'bulk_actions',
        sa.Column('job_id', sa.String(length=36), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('filters', sa.JSON(), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('matched', sa.Integer(), nullable=True),
        sa.Column('done', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('after_created_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('after_id', sa.String(length=36), nullable=True),
        sa.Column('audit_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.ForeignKeyConstraint(['audit_id'], ['audit_log.id'], name=op.f('fk_bulk_actions_audit_id_audit_log'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_bulk_actions_job_id_jobs'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bulk_actions_user_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('job_id', name=op.f('pk_bulk_actions')),
    )


def downgrade():
    op.drop_table('bulk_actions')
    op.drop_index('ix_audit_log_at', table_name='audit_log')
    op.drop_table('audit_log')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_error_groups')
        batch_op.drop_column('error_group')
