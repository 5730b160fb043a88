"""indexes for the admin jobs page: actor filter, and trigram search on PostgreSQL

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Must stay the same text as SEARCH_TEXT in app/job_search.py, or the index goes unused.
SEARCH_TEXT = (
    "lower(coalesce(error_type, '') || ' ' || coalesce(error_message, '')"
    " || ' ' || CAST(args AS TEXT))"
)


def upgrade():
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_jobs_actor_status_created", ["actor", "status", "created_at", "id"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: the database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX ix_jobs_search ON jobs USING gin (({SEARCH_TEXT}) gin_trgm_ops)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_jobs_search")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_actor_status_created")

