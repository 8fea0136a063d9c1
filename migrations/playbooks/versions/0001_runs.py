"""playbook runs: one active run per playbook, each step's state, attempts and gate reports, and a log

Revision ID: 0001_runs
Revises:
Create Date: 2026-12-02
"""

from alembic import op

revision = "0001_runs"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE playbook_runs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            playbook TEXT NOT NULL,
            direction TEXT NOT NULL DEFAULT 'forward' CHECK (direction IN ('forward', 'rollback')),
            state TEXT NOT NULL CHECK (state IN ('running', 'blocked', 'failed', 'done', 'rolled-back')),
            started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            started_by TEXT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            finished_at TIMESTAMPTZ,
            playbook_digest TEXT NOT NULL
        )""")
    # one active run per playbook, whoever starts it: the database refuses a second
    op.execute("CREATE UNIQUE INDEX playbook_runs_one_active ON playbook_runs (playbook) "
               "WHERE state IN ('running', 'blocked', 'failed')")
    op.execute("""
        CREATE TABLE playbook_steps (
            run_id BIGINT NOT NULL REFERENCES playbook_runs (id),
            number INTEGER NOT NULL,
            title TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'running', 'done', 'blocked', 'failed', 'undone')),
            attempts INTEGER NOT NULL DEFAULT 0,
            started_at TIMESTAMPTZ,
            finished_at TIMESTAMPTZ,
            runner TEXT,
            gates JSONB,
            checks JSONB,
            outcome JSONB NOT NULL DEFAULT '{}',
            error TEXT,
            PRIMARY KEY (run_id, number)
        )""")
    op.execute("""
        CREATE TABLE playbook_log (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            run_id BIGINT NOT NULL REFERENCES playbook_runs (id),
            number INTEGER,
            at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            runner TEXT NOT NULL,
            message TEXT NOT NULL
        )""")


def downgrade() -> None:
    op.execute("DROP TABLE playbook_log")
    op.execute("DROP TABLE playbook_steps")
    op.execute("DROP TABLE playbook_runs")
