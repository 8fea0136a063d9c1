"""Adding an event to the outbox, inside the caller's transaction.

Every event is validated against its schema first; an invalid one raises `EventRejected` and
nothing is written. Inserts for the same (topic, key) are serialized with a transaction-scoped
advisory lock, so for one key the outbox id order is the commit order: the relay publishes in id
order, hence per-key order on the topic is commit order even when writers race.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from eventbus.envelope import Envelope, encode, kafka_headers, new_envelope
from eventbus.outbox.ddl import LEASE_PARTITIONS
from eventbus.schemas.client import SchemaClient
from eventbus.schemas.validation import SchemaIssue


@dataclass(frozen=True)
class Route:
    topic: str
    key_field: str


class EventRejected(ValueError):
    def __init__(self, event_name: str, event_version: int, issues: list[SchemaIssue]) -> None:
        detail = "; ".join(f"{i.pointer or '/'}: {i.message}" for i in issues[:5])
        super().__init__(f"{event_name} v{event_version} does not match its schema: {detail}")
        self.event_name = event_name
        self.event_version = event_version
        self.issues = issues


def key_hash(key: str) -> int:
    return int(murmur2(key.encode())) & 0x7FFFFFFF


def lease_partition(hash_: int) -> int:
    return hash_ % LEASE_PARTITIONS


def lock_key(topic: str, key: str, hash_: int | None = None) -> int:
    """The transaction-scoped advisory lock that serializes inserts for one (topic, key)."""
    return (zlib.crc32(topic.encode()) << 31) | (key_hash(key) if hash_ is None else hash_)


_INSERT = text(
    """
    INSERT INTO outbox (event_id, topic, message_key, key_hash, lease_partition,
                        event_name, event_version, value, headers)
    SELECT :event_id, :topic, :message_key, :key_hash, :lease_partition,
           :event_name, :event_version, :value, CAST(:headers AS jsonb)
    FROM (SELECT pg_advisory_xact_lock(:lock_key)) AS same_key_in_commit_order
    """
)


class OutboxWriter:
    def __init__(self, *, producer: str, routes: Mapping[str, Route], schemas: SchemaClient) -> None:
        self.producer = producer
        self.routes = routes
        self.schemas = schemas

    def envelope(self, event_name: str, event_version: int, payload: Mapping[str, Any], **meta: Any) -> Envelope:
        route = self.routes[event_name]
        return new_envelope(
            event_name, event_version, payload, producer=self.producer,
            aggregate_id=str(payload[route.key_field]), **meta,
        )

    async def add(
        self, conn: AsyncConnection, event_name: str, event_version: int, payload: Mapping[str, Any], **meta: Any
    ) -> Envelope:
        """Validate and insert; the caller commits. Raises EventRejected (nothing written) when invalid."""
        envelope = self.envelope(event_name, event_version, payload, **meta)
        _, issues = await self.schemas.validate(envelope)
        if issues:
            raise EventRejected(event_name, event_version, issues)
        await conn.execute(_INSERT, self.row(envelope))
        return envelope

    def row(self, envelope: Envelope) -> dict[str, Any]:
        """The outbox row of an envelope, as `add` inserts it (plus the advisory `lock_key`)."""
        meta = envelope["meta"]
        route = self.routes[meta["event_name"]]
        key = str(envelope["payload"][route.key_field])
        hash_ = key_hash(key)
        return {
            "event_id": uuid.UUID(meta["event_id"]),
            "topic": route.topic,
            "message_key": key,
            "key_hash": hash_,
            "lease_partition": lease_partition(hash_),
            "event_name": meta["event_name"],
            "event_version": meta["event_version"],
            "value": encode(envelope),
            "headers": orjson.dumps([[k, v.decode()] for k, v in kafka_headers(meta)]).decode(),
            "lock_key": lock_key(route.topic, key, hash_),
        }
