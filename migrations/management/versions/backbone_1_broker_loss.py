"""Backbone: the relay notices a broker that lost acknowledged records (offsets it confirmed, losses, what each
lease partition re-published)

Its own branch: every stage of the playbooks has it; no playbook step needs it.

Revision ID: backbone_1_broker_loss
Revises: 0001_before
Create Date: 2026-12-02
"""

from alembic import op

from eventbus.outbox import ddl as outbox_ddl

revision = "backbone_1_broker_loss"
down_revision = "0001_before"
branch_labels = ("backbone",)
depends_on = None


def upgrade() -> None:
    for statement in outbox_ddl.create_broker_loss_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in outbox_ddl.drop_broker_loss_v1():
        op.execute(statement)
