"""seed 004's "before": managers with names only, tasks with "[Area] Title", the outbox, flags and instances

Revision ID: 0001_before
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from eventbus.flags import ddl as flags_ddl
from eventbus.outbox import ddl as outbox_ddl

revision = "0001_before"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("first_name", sa.Text, nullable=False),
        sa.Column("last_name", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, sa.ForeignKey("managers.id"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_tasks_creator_id", "tasks", ["creator_id"])
    for statement in outbox_ddl.create_v1() + flags_ddl.create_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in flags_ddl.drop_v1() + outbox_ddl.drop_v1():
        op.execute(statement)
    op.drop_table("tasks")
    op.drop_table("managers")
