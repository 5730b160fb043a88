"""the admin search finds an email's job by its recipient and subject

``jobs.about`` holds them (written with the job), and the trigram index of
migration 0005 is made again over the search text that now includes it.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Must stay the same text as SEARCH_TEXT in app/job_search.py, or the index goes unused.
SEARCH_TEXT = (
    "lower(coalesce(error_type, '') || ' ' || coalesce(error_message, '')"
    " || ' ' || CAST(args AS TEXT) || ' ' || coalesce(about, ''))"
)
# Migration 0005's text, for the downgrade.
OLD_SEARCH_TEXT = (
    "lower(coalesce(error_type, '') || ' ' || coalesce(error_message, '')"
    " || ' ' || CAST(args AS TEXT))"
)


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("about", sa.Text(), nullable=True))
    op.execute(
        "UPDATE jobs SET about = (SELECT emails.\"to\" || ' ' || emails.subject FROM emails"
        " WHERE emails.job_id = jobs.id) WHERE actor = 'send_email'"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_jobs_search")
        op.execute(f"CREATE INDEX ix_jobs_search ON jobs USING gin (({SEARCH_TEXT}) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_jobs_search")
        op.execute(
            f"CREATE INDEX ix_jobs_search ON jobs USING gin (({OLD_SEARCH_TEXT}) gin_trgm_ops)"
        )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("about")
