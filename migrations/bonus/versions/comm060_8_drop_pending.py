"""COMM-060 step 8 (contract): drop pending_credits (completions that waited for their TaskRating)

Revision ID: comm060_8_drop_pending
Revises: comm060_6_drop_ratings
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "comm060_8_drop_pending"
down_revision = "comm060_6_drop_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("pending_credits")


def downgrade() -> None:
    op.create_table(
        "pending_credits",
        sa.Column("task_id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("received_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
