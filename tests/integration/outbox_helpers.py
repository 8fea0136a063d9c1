"""Writing real, schema-valid events into a test outbox, and running a relay in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.db import plain_url
from eventbus.outbox import OutboxWriter, Route
from eventbus.outbox.relay import Relay, RelayConfig
from eventbus.topics import TopicSpec
from registry.client import SchemaClient

EVENT = "TaskCompleted"


def writer(topic: str, schemas: SchemaClient) -> OutboxWriter:
    """Events go to `topic`, keyed by task_id."""
    return OutboxWriter(producer="test", routes={EVENT: Route(topic, "task_id")}, schemas=schemas)


def payload(task_id: str, seq: int = 0) -> dict[str, str]:
    # candidate_id carries a sequence number so per-key order can be checked on the topic
    return {"task_id": task_id, "creator_id": str(uuid.uuid4()), "candidate_id": str(uuid.UUID(int=seq))}


def seq_of(value: dict[str, dict[str, str]]) -> int:
    return uuid.UUID(value["payload"]["candidate_id"]).int


async def write(engine: AsyncEngine, w: OutboxWriter, task_id: str, seq: int = 0) -> str:
    async with engine.begin() as conn:
        envelope = await w.add(conn, EVENT, 0, payload(task_id, seq))
    return str(envelope["meta"]["event_id"])


async def unpublished(url: str) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))
    finally:
        await conn.close()


FAST = RelayConfig(poll_interval=0.5, lease_ttl=5.0, heartbeat_interval=0.3, publish_timeout=1.0,
                   backoff_base=0.05, backoff_cap=0.5, breaker_threshold=2, breaker_reset=0.5)


@contextlib.asynccontextmanager
async def running_relay(url: str, bootstrap: str, topic: TopicSpec, config: RelayConfig = FAST,
                        instance_id: str | None = None) -> AsyncIterator[Relay]:
    relay = Relay(service="test", dsn=plain_url(url), bootstrap_servers=bootstrap, topics=[topic], config=config,
                  instance_id=instance_id)
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
