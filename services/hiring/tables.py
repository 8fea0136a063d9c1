"""Hiring's tasks, replicated from TaskCreated; the title keeps its "[Area] Title" form in every version
(hiring only shows it), so US-160 changes nothing here."""

from __future__ import annotations

from sqlalchemy import TIMESTAMP, CheckConstraint, Column, MetaData, SmallInteger, Table, Text, Uuid, func

metadata = MetaData()

tasks = Table(
    "tasks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("creator_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="open"),
    Column("candidate_id", Uuid),
    Column("rating", SmallInteger),
    Column("finished_at", TIMESTAMP(timezone=True)),
    Column("replicated_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('open', 'completed', 'failed')", name="tasks_status_known"),
)
