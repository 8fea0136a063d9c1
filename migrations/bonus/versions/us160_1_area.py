"""US-160 steps 1 and 6 (expand): tasks.knowledge_area, nullable; step 8 backfills it from the title

Revision ID: us160_1_area
Revises: 0001_before
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "us160_1_area"
down_revision = "0001_before"
branch_labels = ("us160",)
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("knowledge_area", sa.Text))


def downgrade() -> None:
    # rows split by the backfill or the parsing consumer get their "[Area] Title" back first
    op.execute("UPDATE tasks SET title = '[' || knowledge_area || '] ' || title WHERE knowledge_area IS NOT NULL")
    op.drop_column("tasks", "knowledge_area")
