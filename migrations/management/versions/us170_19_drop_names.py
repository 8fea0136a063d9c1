"""US-170 step 19 (contract): drop first_name and last_name. Irreversible: the names are gone.

Revision ID: us170_19_drop_names
Revises: us170_12_names_optional
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "us170_19_drop_names"
down_revision = "us170_12_names_optional"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_column("managers", "first_name")
    op.drop_column("managers", "last_name")


def downgrade() -> None:
    # the columns come back empty: the data cannot (the playbook marks this step irreversible)
    op.add_column("managers", sa.Column("first_name", sa.Text))
    op.add_column("managers", sa.Column("last_name", sa.Text))
