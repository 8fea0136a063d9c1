from __future__ import annotations

from sqlalchemy import TIMESTAMP, Column, ForeignKey, MetaData, Table, Text, Uuid, func

metadata = MetaData()

managers = Table(
    "managers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("first_name", Text, nullable=False),
    Column("last_name", Text, nullable=False),
    Column("username", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)

tasks = Table(
    "tasks", metadata,
    Column("id", Uuid, primary_key=True),
    Column("creator_id", Uuid, ForeignKey("managers.id"), nullable=False),
    Column("title", Text, nullable=False),
    Column("knowledge_area", Text),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)
