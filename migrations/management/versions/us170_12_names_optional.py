"""US-170 step 12 (expand): first_name and last_name become optional (managers may be created by username)

Revision ID: us170_12_names_optional
Revises: us170_1_username
Create Date: 2026-12-02
"""

from alembic import op

revision = "us170_12_names_optional"
down_revision = "us170_1_username"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("managers", "first_name", nullable=True)
    op.alter_column("managers", "last_name", nullable=True)


def downgrade() -> None:
    # rows written without names since get an empty name back, so the constraint can hold again
    op.execute("UPDATE managers SET first_name = coalesce(first_name, ''), last_name = coalesce(last_name, '')")
    op.alter_column("managers", "first_name", nullable=False)
    op.alter_column("managers", "last_name", nullable=False)
