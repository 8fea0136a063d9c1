"""COMM-040 step 6 (contract): the counting consumer's table is no longer needed

Revision ID: comm040_6_drop_results_seen
Revises: comm040_2_results_seen
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "comm040_6_drop_results_seen"
down_revision = "comm040_2_results_seen"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("task_results_seen")


def downgrade() -> None:
    op.create_table(
        "task_results_seen",
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("task_id", sa.Uuid, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("seen_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_task_results_seen_task", "task_results_seen", ["task_id", "outcome"])
