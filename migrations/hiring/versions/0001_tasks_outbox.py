"""tasks (replicated from TaskCreated) and the outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from eventbus.consumer import ddl as consumer_ddl
from eventbus.outbox import ddl as outbox_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("knowledge_area", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("candidate_id", sa.Uuid),
        sa.Column("rating", sa.SmallInteger),
        sa.Column("finished_at", sa.TIMESTAMP(timezone=True)),
        sa.Column("replicated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("status IN ('open', 'completed', 'failed')", name="tasks_status_known"),
    )
    for statement in outbox_ddl.create_v1() + consumer_ddl.create_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in consumer_ddl.drop_v1() + outbox_ddl.drop_v1():
        op.execute(statement)
    op.drop_table("tasks")
