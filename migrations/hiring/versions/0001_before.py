"""tasks (replicated from TaskCreated), the outbox, the consumer's dedupe and replay tables, flags, instances

Revision ID: 0001_before
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from eventbus.consumer import ddl as consumer_ddl
from eventbus.flags import ddl as flags_ddl
from eventbus.outbox import ddl as outbox_ddl

revision = "0001_before"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("candidate_id", sa.Uuid),
        sa.Column("rating", sa.SmallInteger),
        sa.Column("finished_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("replicated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('open', 'completed', 'failed')", name="tasks_status_known"),
    )
    for statement in outbox_ddl.create_v1() + consumer_ddl.create_v1() + flags_ddl.create_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in flags_ddl.drop_v1() + consumer_ddl.drop_v1() + outbox_ddl.drop_v1():
        op.execute(statement)
    op.drop_table("tasks")
