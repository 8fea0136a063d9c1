"""US-160 step 1 (expand): tasks.knowledge_area, nullable; old rows keep "[Area] Title" (read via old_title)

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
    op.drop_column("tasks", "knowledge_area")
