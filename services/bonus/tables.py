"""Bonus's tables, every column of their lives (see eventbus.lifecycle).

COMM-070 creates `managers` (bonus's own copy, fed by ManagerCreated; before, bonus asked management);
US-160 adds `tasks.knowledge_area`; US-170 adds `managers.username` and drops the names; COMM-040 adds
`task_results_seen` (what the counting consumer saw) and drops it; COMM-060 drops `task_ratings` and
`pending_credits` (completions waiting for their TaskRating).
"""

from __future__ import annotations

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)

from eventbus.lifecycle import lifecycle

metadata = MetaData()

managers = Table(
    "managers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("first_name", Text, info=lifecycle(dropped_by="us170_19_drop_names")),
    Column("last_name", Text, info=lifecycle(dropped_by="us170_19_drop_names")),
    Column("username", Text, info=lifecycle(added_by="us170_1_username")),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    info=lifecycle(added_by="comm070_2_managers"),
)

tasks = Table(
    "tasks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("creator_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("knowledge_area", Text, info=lifecycle(added_by="us160_1_area")),
)

ledger = Table(
    "ledger", metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column("manager_id", Uuid, nullable=False),
    Column("task_id", Uuid, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("rating", SmallInteger),
    #: 'http' (COMM-040 before: hiring called POST /credits) or 'event' (TaskCompleted/TaskFailed)
    Column("source", Text, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("task_id", "outcome", name="ledger_one_credit_per_task_outcome"),
    CheckConstraint("outcome IN ('completed', 'failed')", name="ledger_outcome_known"),
    CheckConstraint("source IN ('http', 'event')", name="ledger_source_known"),
    Index("ix_ledger_manager_id", "manager_id"),
)

task_ratings = Table(
    "task_ratings", metadata,
    Column("task_id", Uuid, primary_key=True),
    Column("rating", SmallInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
    info=lifecycle(dropped_by="comm060_6_drop_ratings"),
)

pending_credits = Table(
    "pending_credits", metadata,
    Column("task_id", Uuid, primary_key=True),
    Column("creator_id", Uuid, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("received_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    info=lifecycle(dropped_by="comm060_8_drop_pending"),
)

task_results_seen = Table(
    "task_results_seen", metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("task_id", Uuid, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("seen_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_task_results_seen_task", "task_id", "outcome"),
    info=lifecycle(added_by="comm040_2_results_seen", dropped_by="comm040_6_drop_results_seen"),
)
