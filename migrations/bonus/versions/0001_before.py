"""seed 004's "before": tasks with "[Area] Title", the ledger, ratings from TaskRating and the completions that
wait for theirs; no managers table (bonus asks management over HTTP, COMM-070); dedupe, replay, flags, instances

Revision ID: 0001_before
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from eventbus.consumer import ddl as consumer_ddl
from eventbus.flags import ddl as flags_ddl

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
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("manager_id", sa.Uuid, nullable=False),
        sa.Column("task_id", sa.Uuid, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("rating", sa.SmallInteger),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("task_id", "outcome", name="ledger_one_credit_per_task_outcome"),
        sa.CheckConstraint("outcome IN ('completed', 'failed')", name="ledger_outcome_known"),
        sa.CheckConstraint("source IN ('http', 'event')", name="ledger_source_known"),
    )
    op.create_index("ix_ledger_manager_id", "ledger", ["manager_id"])
    op.create_table(
        "task_ratings",
        sa.Column("task_id", sa.Uuid, primary_key=True),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
    )
    op.create_table(
        "pending_credits",
        sa.Column("task_id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("received_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    for statement in consumer_ddl.create_v1() + flags_ddl.create_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in flags_ddl.drop_v1() + consumer_ddl.drop_v1():
        op.execute(statement)
    for table in ("pending_credits", "task_ratings", "ledger", "tasks"):
        op.drop_table(table)
