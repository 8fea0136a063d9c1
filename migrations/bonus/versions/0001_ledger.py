"""managers, tasks, ledger, task ratings, and the consumer's dedupe and replay tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from eventbus.consumer import ddl as consumer_ddl

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "managers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("first_name", sa.Text),
        sa.Column("last_name", sa.Text),
        sa.Column("username", sa.Text),
        sa.Column("updated_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("creator_id", sa.Uuid, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("knowledge_area", sa.Text),
    )
    op.create_table(
        "ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("manager_id", sa.Uuid, nullable=False, index=True),
        sa.Column("task_id", sa.Uuid, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
        sa.Column("created_at", sa.TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("task_id", "outcome", name="ledger_one_credit_per_task_outcome"),
        sa.CheckConstraint("outcome IN ('completed', 'failed')", name="ledger_outcome_known"),
    )
    op.create_table(
        "task_ratings",
        sa.Column("task_id", sa.Uuid, primary_key=True),
        sa.Column("rating", sa.SmallInteger, nullable=False),
        sa.Column("event_id", sa.Uuid, nullable=False),
    )
    for statement in consumer_ddl.create_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in consumer_ddl.drop_v1():
        op.execute(statement)
    for table in ("task_ratings", "ledger", "tasks", "managers"):
        op.drop_table(table)
