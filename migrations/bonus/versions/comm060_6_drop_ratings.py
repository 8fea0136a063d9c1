"""COMM-060 step 6 (contract): drop the ratings table (ratings now come from hiring's GET /tasks/{id}/rating)

Revision ID: comm060_6_drop_ratings
Revises: 0001_before
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "comm060_6_drop_ratings"
down_revision = "0001_before"
branch_labels = ("comm060",)
depends_on = None


def upgrade() -> None:
    op.drop_table("task_ratings")


def downgrade() -> None:
    op.create_table(
        "task_ratings",
        sa.Column("task_id", sa.Uuid, primary_key=True),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
    )
