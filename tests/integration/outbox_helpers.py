"""Writing real, schema-valid events into a test outbox, and running a relay in the test's loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.consumer.messages import RawMessage
from eventbus.consumer.replay import DlqRecord, read_records
from eventbus.db import plain_url
from eventbus.outbox import OutboxWriter, Route
from eventbus.outbox.relay import Relay, RelayConfig
from eventbus.outbox.writer import key_hash
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec

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
        return int(await conn.fetchval("SELECT count(*) FROM outbox_pending"))
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


# -- bulk backlogs, reading a whole topic, and the order/completeness check the fault tests share ---------------

COLUMNS = ("event_id", "topic", "message_key", "key_hash", "lease_partition", "event_name", "event_version",
           "value", "headers")


def backlog_rows(w: OutboxWriter, keyed: list[tuple[str, int]]) -> tuple[list[tuple[object, ...]], list[str]]:
    """Outbox rows exactly as `OutboxWriter.add` would insert them, for (task_id, seq) pairs, and their event ids.

    No schema validation (the payloads are the same shape `payload` makes for the writer tests)."""
    rows: list[tuple[object, ...]] = []
    ids: list[str] = []
    for task_id, seq in keyed:
        envelope = w.envelope(EVENT, 0, payload(task_id, seq))
        row = w.row(envelope)
        rows.append(tuple(row[c] for c in COLUMNS))
        ids.append(str(envelope["meta"]["event_id"]))
    return rows, ids


async def bulk_insert(url: str, rows: list[tuple[object, ...]], chunk: int = 50_000) -> None:
    """COPY the rows into the outbox (ids follow the list order; the NOTIFY trigger fires per statement)."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        for start in range(0, len(rows), chunk):
            await conn.copy_records_to_table("outbox", records=rows[start:start + chunk], columns=COLUMNS)
    finally:
        await conn.close()


async def published(url: str) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox_published"))
    finally:
        await conn.close()


async def read_all(bootstrap: str, topic: str, timeout: float = 30.0) -> list[DlqRecord]:
    """Every record of `topic` up to its end as of now, in (partition, offset) order (to the fetch high
    watermark: Tansu 0.6 under-reports end offsets, see `eventbus.consumer.replay.read_records`)."""
    return await read_records(bootstrap, [topic], timeout=timeout)


def event_id_of(record: RawMessage) -> str:
    return str(dict(record.headers)["event_id"].decode())


@dataclass
class TopicCheck:
    records: int
    distinct: int
    duplicates: int


def check_topic(records: Sequence[RawMessage], expected: dict[str, list[str]], partitions: int) -> TopicCheck:
    """Assert that every expected event arrived and that, per key, first appearances follow `expected`.

    `expected[key]` lists the key's event ids in commit order. Duplicates are allowed (at-least-once), but
    dropping them must leave each key's events exactly in commit order, all on the key's Kafka partition."""
    by_key: dict[str, list[str]] = defaultdict(list)
    seen: set[str] = set()
    for record in records:  # (partition, offset) order; one key lives in one partition
        event_id = event_id_of(record)
        key = record.key.decode()
        assert record.partition == key_hash(key) % partitions, f"key {key} on partition {record.partition}"
        if event_id not in seen:
            seen.add(event_id)
            by_key[key].append(event_id)
    wanted = {e for ids in expected.values() for e in ids}
    missing = wanted - seen
    assert not missing, f"{len(missing)} of {len(wanted)} committed events never reached the topic"
    assert seen <= wanted, f"{len(seen - wanted)} events on the topic were never committed"
    for key, ids in expected.items():
        if by_key[key] != ids:
            position = {e: i for i, e in enumerate(ids)}
            got = [position[e] for e in by_key[key]]
            raise AssertionError(f"key {key}: events arrived in commit positions {got}, expected 0..{len(ids) - 1}")
    return TopicCheck(len(records), len(seen), len(records) - len(seen))
