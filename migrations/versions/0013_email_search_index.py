"""trigram index for finding an email job by its email's recipient and subject, on PostgreSQL

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Must stay the same text as EMAIL_SEARCH_TEXT in app/job_search.py, or the index goes unused.
EMAIL_SEARCH_TEXT = "lower(\"to\" || ' ' || subject)"


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: the database owner may create it (as in 0005).
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX ix_emails_search ON emails USING gin (({EMAIL_SEARCH_TEXT}) gin_trgm_ops)"
        )


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_emails_search")
