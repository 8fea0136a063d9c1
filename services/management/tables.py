"""Management's tables, every column of their lives (see eventbus.lifecycle): US-160 adds
`tasks.knowledge_area`; US-170 adds `managers.username`, makes the names optional, then drops them."""

from __future__ import annotations

from sqlalchemy import TIMESTAMP, Column, ForeignKey, Index, MetaData, Table, Text, Uuid, func

from eventbus.lifecycle import lifecycle

metadata = MetaData()

managers = Table(
    "managers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("first_name", Text, nullable=False,
           info=lifecycle(nullable_from="us170_12_names_optional", dropped_by="us170_19_drop_names")),
    Column("last_name", Text, nullable=False,
           info=lifecycle(nullable_from="us170_12_names_optional", dropped_by="us170_19_drop_names")),
    Column("username", Text, info=lifecycle(added_by="us170_1_username")),
    Column("account_id", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)

tasks = Table(
    "tasks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("creator_id", Uuid, ForeignKey("managers.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("knowledge_area", Text, info=lifecycle(added_by="us160_1_area")),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_tasks_creator_id", "creator_id"),
)
