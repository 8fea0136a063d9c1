"""Backbone: the relay publishes without rewriting outbox rows (`outbox_pending` and `outbox_published` replace
the `published_at` column; `eventbus.outbox.ddl.create_pending_v1`)

Stop the relays of the earlier code before this runs: they read `published_at`, which it drops.

Revision ID: backbone_2_outbox_pending
Revises: backbone_1_broker_loss
Create Date: 2026-12-03
"""

from alembic import op

from eventbus.outbox import ddl as outbox_ddl

revision = "backbone_2_outbox_pending"
down_revision = "backbone_1_broker_loss"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in outbox_ddl.create_pending_v1():
        op.execute(statement)


def downgrade() -> None:
    for statement in outbox_ddl.drop_pending_v1():
        op.execute(statement)
