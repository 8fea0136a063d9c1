"""US-170 step 1 (expand): managers.username, nullable until the backfill (step 11) fills the old rows

Revision ID: us170_1_username
Revises: 0001_before
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "us170_1_username"
down_revision = "0001_before"
branch_labels = ("us170",)
depends_on = None


def upgrade() -> None:
    op.add_column("managers", sa.Column("username", sa.Text))


def downgrade() -> None:
    op.drop_column("managers", "username")
