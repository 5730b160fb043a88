"""state changes that touch fewer index entries: the outbox's and the periodic
jobs' indexes hold only the rows they look for

Every change of a job's status is an update PostgreSQL cannot make HOT (the
status is indexed), so each writes a new entry into every index on ``jobs``. A
partial index gets one only for a row its condition admits: a job that is
published with its commit and has no unique key enters neither of these two.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 06:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

UNPUBLISHED = "published_at IS NULL AND status = 'queued'"
HAS_KEY = "unique_key IS NOT NULL"


def upgrade():
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_unpublished')
        batch_op.drop_constraint('uq_jobs_unique_key', type_='unique')
        batch_op.create_index(
            'ix_jobs_unpublished',
            ['created_at', 'id'],
            postgresql_where=sa.text(UNPUBLISHED),
            sqlite_where=sa.text(UNPUBLISHED),
        )
        batch_op.create_index(
            'uq_jobs_unique_key',
            ['unique_key'],
            unique=True,
            postgresql_where=sa.text(HAS_KEY),
            sqlite_where=sa.text(HAS_KEY),
        )
    if op.get_bind().dialect.name == "postgresql":
        # An email's row changes twice after its insert (attempts, sent_at),
        # neither an indexed column: room on its page lets both be HOT.
        op.execute("ALTER TABLE emails SET (fillfactor = 85)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE emails RESET (fillfactor)")
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_jobs_unique_key')
        batch_op.drop_index('ix_jobs_unpublished')
        batch_op.create_unique_constraint('uq_jobs_unique_key', ['unique_key'])
        batch_op.create_index('ix_jobs_unpublished', ['published_at', 'status'], unique=False)
