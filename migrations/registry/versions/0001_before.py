"""schemas (ids never reused, content-hash dedupe), subject versions, config

Revision ID: 0001_before
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_before"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schemas",
        # identity: a permanently deleted schema's id is never handed out again
        sa.Column("id", sa.BigInteger, sa.Identity(always=True, start=1), primary_key=True),
        sa.Column("schema_type", sa.Text, nullable=False, server_default="JSON"),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_hash", sa.Text, nullable=False, unique=True),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "subject_versions",
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("schema_id", sa.BigInteger, sa.ForeignKey("schemas.id"), nullable=False),
        sa.Column("event_version", sa.Integer),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("subject_versions_schema", "subject_versions", ["schema_id"])
    op.create_index("subject_versions_event", "subject_versions", ["subject", "event_version"])
    op.create_table(
        "registry_config",
        sa.Column("subject", sa.Text, primary_key=True),  # '' is the global default
        sa.Column("compatibility", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False, server_default="LENIENT"),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.execute("INSERT INTO registry_config (subject, compatibility, policy) "
               "VALUES ('', 'BACKWARD_TRANSITIVE', 'LENIENT')")


def downgrade() -> None:
    op.drop_table("registry_config")
    op.drop_table("subject_versions")
    op.drop_table("schemas")
