from __future__ import annotations

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Column,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)

metadata = MetaData()

managers = Table(
    "managers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("first_name", Text),
    Column("last_name", Text),
    Column("username", Text),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)

tasks = Table(
    "tasks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("creator_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("knowledge_area", Text),
)

ledger = Table(
    "ledger", metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("manager_id", Uuid, nullable=False, index=True),
    Column("task_id", Uuid, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("amount", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("task_id", "outcome", name="ledger_one_credit_per_task_outcome"),
)

task_ratings = Table(
    "task_ratings", metadata,
    Column("task_id", Uuid, primary_key=True),
    Column("rating", SmallInteger, nullable=False),
    Column("event_id", Uuid, nullable=False),
)
