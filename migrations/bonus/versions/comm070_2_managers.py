"""COMM-070 step 2 (expand): bonus's own copy of managers, fed by ManagerCreated

Revision ID: comm070_2_managers
Revises: 0001_before
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "comm070_2_managers"
down_revision = "0001_before"
branch_labels = ("comm070",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("managers")
