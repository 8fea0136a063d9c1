"""Dead-letter topics: naming, headers and a confirmed write.

One DLQ topic per (consumer group, source topic): `dlq.<group>.<source topic>`; records replayed
too often go to `parking.<group>.<source topic>`. The original key, value and headers pass
through; the `dlq.*` headers are replaced on every dead-lettering (never appended), except
`dlq.replay.count`, which replays increment; so headers cannot grow without bound.

Every record written is also kept in the group's database (`dlq_records`: key, value, headers exactly as sent,
and where the broker put it), so that a broker that loses its log (an in-memory broker restarted, a topic
recreated, an unclean leader election) loses no dead letter: the replay CLI reads them from there.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from eventbus.consumer.errors import Classification
from eventbus.consumer.messages import RawMessage
from eventbus.envelope import H_EVENT_ID, header_value
from eventbus.resilience import Backoff
from eventbus.resilience.retry import retry
from eventbus.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)

PREFIX = "dlq."
H_ORIGINAL_TOPIC = "dlq.original.topic"
H_ORIGINAL_PARTITION = "dlq.original.partition"
H_ORIGINAL_OFFSET = "dlq.original.offset"
H_ORIGINAL_TIMESTAMP = "dlq.original.timestamp"
H_GROUP = "dlq.consumer.group"
H_FAILED_AT = "dlq.failed.at"
H_ATTEMPTS = "dlq.attempts"
H_CATEGORY = "dlq.error.category"
H_CLASS = "dlq.error.class"
H_MESSAGE = "dlq.error.message"
H_STACKTRACE = "dlq.error.stacktrace"
H_REPLAY_COUNT = "dlq.replay.count"

MESSAGE_LIMIT = 1_000
STACKTRACE_LIMIT = 8_000


def dlq_topic(group: str, source_topic: str) -> str:
    return f"dlq.{group}.{source_topic}"


def parking_topic(group: str, source_topic: str) -> str:
    return f"parking.{group}.{source_topic}"


def truncate(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 15].decode("utf-8", "ignore") + "...[truncated]"


def dlq_headers(message: RawMessage, group: str, failure: Classification, attempts: int) -> list[tuple[str, bytes]]:
    kept = [(k, v) for k, v in message.headers if not k.startswith(PREFIX) or k == H_REPLAY_COUNT]
    added = [
        (H_ORIGINAL_TOPIC, message.topic),
        (H_ORIGINAL_PARTITION, str(message.partition)),
        (H_ORIGINAL_OFFSET, str(message.offset)),
        (H_ORIGINAL_TIMESTAMP, "" if message.timestamp_ms is None else str(message.timestamp_ms)),
        (H_GROUP, group),
        (H_FAILED_AT, datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")),
        (H_ATTEMPTS, str(attempts)),
        (H_CATEGORY, failure.category.value),
        (H_CLASS, failure.error_class),
        (H_MESSAGE, truncate(failure.message, MESSAGE_LIMIT)),
        (H_STACKTRACE, truncate(failure.stacktrace, STACKTRACE_LIMIT)),
    ]
    return kept + [(k, v.encode()) for k, v in added]


_STORE = """
INSERT INTO dlq_records (record_id, dlq_topic, dlq_partition, dlq_offset, record_key, record_value, header_keys,
                         header_values, event_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (record_id) DO NOTHING
"""
_FORGET = """
DELETE FROM dlq_records WHERE id IN (
    SELECT id FROM dlq_records WHERE written_at < now() - make_interval(secs => $1) ORDER BY id LIMIT $2)
"""


async def forget_older_than(pool: asyncpg.Pool, retention_s: float, batch: int = 5000) -> int:
    """Delete the database copies of dead letters older than `retention_s` (a batch at a time)."""
    try:
        status: str = await pool.execute(_FORGET, retention_s, batch)
    except asyncpg.UndefinedTableError:
        return 0
    return int(status.split()[-1])


def event_id_of(headers: list[tuple[str, bytes]], value: bytes | None) -> str | None:
    """The record's event id: its header, else the envelope's `meta.event_id` (None when neither says)."""
    found = header_value(headers, H_EVENT_ID)
    if found:
        return found
    try:
        return str(json.loads(value or b"")["meta"]["event_id"])
    except (ValueError, TypeError, KeyError):
        return None


class DeadLetterWriter:
    """Writes to DLQ topics with acks=all and waits for the broker; retries until it is confirmed. Then keeps a
    copy in the group's database (`database`: the consumer's pool; the BatchProcessor gives its own), retrying
    until that is written too."""

    def __init__(self, bootstrap_servers: str, group: str, *, backoff_cap: float = 10.0,
                 database: Callable[[], Awaitable[asyncpg.Pool]] | None = None) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group = group
        self.backoff_cap = backoff_cap
        self.database = database
        #: whether the group's database has `dlq_records` (None: not asked yet)
        self.stored: bool | None = None
        #: source topic -> partition count (the worker sets it): a DLQ topic is declared with its source's count
        #: before the first write to it by each producer; a broker that came back empty would create it with its
        #: own default count, and the write to the source's partition would fail for good
        self.partitions: dict[str, int] = {}
        self._declared: set[str] = set()
        self._producer: AIOKafkaProducer | None = None

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap_servers, acks="all",
                                        client_id=f"dlq-{self.group}", request_timeout_ms=10_000,
                                        max_request_size=2_000_000)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def write(self, message: RawMessage, failure: Classification, attempts: int) -> None:
        """Return only once the broker confirmed the DLQ record (blocks while the broker is down)."""
        topic = dlq_topic(self.group, message.topic)
        headers = dlq_headers(message, self.group, failure, attempts)
        async def send() -> tuple[int, int]:
            producer = await self._ensure()
            if topic not in self._declared and message.topic in self.partitions:
                await ensure_topics(self.bootstrap_servers, [TopicSpec(topic, self.partitions[message.topic])])
                self._declared.add(topic)
            metadata = await producer.send_and_wait(topic, key=message.key, value=message.value, headers=headers,
                                                    partition=message.partition)
            return metadata.partition, metadata.offset

        async def reconnect(_exc: BaseException) -> None:
            await self.close()

        partition, offset = await retry(send, what=f"DLQ write to {topic}",
                                        backoff=Backoff(base=0.2, cap=self.backoff_cap), log=log, on_failure=reconnect)
        if self.database is not None:
            record_id = uuid.uuid4()  # drawn once: a retried insert that did commit adds no second row

            async def store() -> None:
                await self._store(record_id, topic, partition, offset, message, headers)

            await retry(store, what=f"DLQ copy of {topic}[{partition}]@{offset} in the database",
                        backoff=Backoff(base=0.2, cap=self.backoff_cap), log=log)

    async def _store(self, record_id: uuid.UUID, topic: str, partition: int, offset: int, message: RawMessage,
                     headers: list[tuple[str, bytes]]) -> None:
        assert self.database is not None
        pool = await self.database()
        if self.stored is None:
            self.stored = bool(await pool.fetchval("SELECT to_regclass('dlq_records') IS NOT NULL"))
            if not self.stored:
                log.warning("the %s database has no dlq_records (Alembic branch `backbone`): dead letters are kept "
                            "on the broker only, and a broker that loses its log loses them", self.group)
        if not self.stored:
            return
        await pool.execute(_STORE, record_id, topic, partition, offset, message.key, message.value,
                           [k for k, _ in headers], [v for _, v in headers], event_id_of(headers, message.value))

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        self._declared.clear()
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("DLQ producer stop: %r", exc)
