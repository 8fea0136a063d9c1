"""Backbone: the consumer keeps a copy of every dead letter it writes (`dlq_records`), for a broker that lost
its log

Its own branch: every stage of the playbooks has it; no playbook step needs it.

Revision ID: backbone_1_dlq_records
Revises: 0001_before
Create Date: 2026-12-03
"""

from alembic import op

from eventbus.consumer import ddl as consumer_ddl

revision = "backbone_1_dlq_records"
down_revision = "0001_before"
branch_labels = ("backbone",)
depends_on = None


def upgrade() -> None:
    for statement in consumer_ddl.create_dlq_records_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in consumer_ddl.drop_dlq_records_v1():
        op.execute(statement)
