"""Dead-letter topics: naming, headers and a confirmed write.

One DLQ topic per (consumer group, source topic): `dlq.<group>.<source topic>`; records replayed
too often go to `parking.<group>.<source topic>`. The original key, value and headers pass
through; the `dlq.*` headers are replaced on every dead-lettering (never appended), except
`dlq.replay.count`, which replays increment; so headers cannot grow without bound.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from eventbus.consumer.errors import Classification
from eventbus.consumer.messages import RawMessage
from eventbus.resilience import Backoff
from eventbus.resilience.retry import retry

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


class DeadLetterWriter:
    """Writes to DLQ topics with acks=all and waits for the broker; retries until it is confirmed."""

    def __init__(self, bootstrap_servers: str, group: str, *, backoff_cap: float = 10.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group = group
        self.backoff_cap = backoff_cap
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
        async def send() -> None:
            producer = await self._ensure()
            await producer.send_and_wait(topic, key=message.key, value=message.value, headers=headers,
                                         partition=message.partition)

        async def reconnect(_exc: BaseException) -> None:
            await self.close()

        await retry(send, what=f"DLQ write to {topic}", backoff=Backoff(base=0.2, cap=self.backoff_cap), log=log,
                    on_failure=reconnect)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:
                log.debug("DLQ producer stop: %r", exc)
