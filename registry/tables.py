"""The registry's tables as the store expects them (the store speaks SQL; this is what the drift test holds
the migrated database to)."""

from __future__ import annotations

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    false,
    func,
)

metadata = MetaData()

schemas = Table(
    "schemas", metadata,
    # identity: a permanently deleted schema's id is never handed out again
    Column("id", BigInteger, Identity(always=True, start=1), primary_key=True),
    Column("schema_type", Text, nullable=False, server_default="JSON"),
    Column("content", Text, nullable=False),
    Column("content_hash", Text, nullable=False, unique=True),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)

subject_versions = Table(
    "subject_versions", metadata,
    Column("subject", Text, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("schema_id", BigInteger, ForeignKey("schemas.id"), nullable=False),
    Column("event_version", Integer),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Index("subject_versions_schema", "schema_id"),
    Index("subject_versions_event", "subject", "event_version"),
)

registry_config = Table(
    "registry_config", metadata,
    Column("subject", Text, primary_key=True),  # '' is the global default
    Column("compatibility", Text, nullable=False),
    Column("policy", Text, nullable=False, server_default="LENIENT"),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
)
