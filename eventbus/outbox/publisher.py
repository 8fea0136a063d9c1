"""Publishing outbox rows to Kafka with one batch in flight per topic-partition.

Rows are grouped by (topic, partition) in id order; each group is sent as a sequence of record
batches, the next only after the broker confirmed the previous one, and a group stops at its first
failure. So nothing of a key is ever written after a failed earlier row of the same key: a retry
may duplicate a confirmed-but-unacknowledged batch, never reorder. The partition is computed from
the stored murmur2 hash exactly as Kafka's default partitioner would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError

from eventbus.outbox.store import OutboxRow

log = logging.getLogger(__name__)

Idempotence = Literal["auto", "on", "off"]


@dataclass
class PublishOutcome:
    confirmed: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # sizes of the confirmed record batches
    error: BaseException | None = None


class IdempotenceUnsupported(RuntimeError):
    pass


class KafkaPublisher:
    def __init__(
        self,
        bootstrap_servers: str,
        *,
        idempotence: Idempotence = "auto",
        request_timeout: float = 5.0,
        max_batch_bytes: int = 1_000_000,
        client_id: str = "outbox-relay",
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.idempotence = idempotence
        self.request_timeout = request_timeout
        self.max_batch_bytes = max_batch_bytes
        self.client_id = client_id
        self.idempotent = False
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._idempotence_supported: bool | None = None

    @property
    def started(self) -> bool:
        return self._producer is not None

    def _make(self, idempotent: bool) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=idempotent,
            request_timeout_ms=int(self.request_timeout * 1000),
            max_batch_size=self.max_batch_bytes,
            max_request_size=self.max_batch_bytes + 100_000,
            linger_ms=0,
        )

    async def start(self) -> None:
        if self._producer is not None:
            return
        if self.idempotence == "on" or (self.idempotence == "auto" and self._idempotence_supported is not False):
            producer = self._make(True)
            try:
                # aiokafka's start() asks for a producer id (InitProducerId); a broker without it
                # (Tansu) answers with an error, or never with an id
                await asyncio.wait_for(producer.start(), timeout=2 * self.request_timeout)
                self._producer, self.idempotent, self._idempotence_supported = producer, True, True
                return
            except KafkaConnectionError:
                await self._abandon(producer)
                raise  # the broker is down: nothing learnt about idempotence
            except (KafkaError, TimeoutError) as exc:
                await self._abandon(producer)
                if self.idempotence == "on":
                    raise IdempotenceUnsupported(repr(exc)) from exc
                self._idempotence_supported = False
                log.warning("broker refused an idempotent producer (%r); using acks=all without it", exc)
        producer = self._make(False)
        try:
            await producer.start()
        except BaseException:
            await self._abandon(producer)
            raise
        self._producer, self.idempotent = producer, False

    async def _abandon(self, producer: AIOKafkaProducer) -> None:
        try:
            await asyncio.wait_for(producer.stop(), timeout=self.request_timeout)
            return
        except (TimeoutError, KafkaError, OSError) as exc:
            log.warning("producer did not stop cleanly: %r", exc)
        except Exception as exc:  # a dead sender task re-raises its own error from stop()
            log.warning("producer did not stop cleanly: %r", exc)
        # stop() waits for unsent batches to drain; against a hung broker it never gets past that, and
        # cancelling it leaves the sender task and the connections running. Close them ourselves.
        with contextlib.suppress(Exception):
            sender = getattr(producer, "_sender", None)
            if sender is not None:
                await asyncio.wait_for(sender.close(), timeout=self.request_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.client.close(), timeout=self.request_timeout)

    async def reset(self) -> None:
        """Drop the producer (after a failure) so the next publish starts from a clean connection."""
        producer, self._producer = self._producer, None
        self._partitions.clear()
        if producer is not None:
            await self._abandon(producer)

    async def stop(self) -> None:
        await self.reset()

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            assert self._producer is not None
            count = len(await self._producer.partitions_for(topic))
            self._partitions[topic] = count
        return count

    async def publish(self, rows: list[OutboxRow]) -> PublishOutcome:
        outcome = PublishOutcome()
        try:
            await self.start()
            counts = {topic: await self.partition_count(topic) for topic in {row.topic for row in rows}}
            groups: dict[tuple[str, int], list[OutboxRow]] = defaultdict(list)
            for row in rows:
                groups[(row.topic, row.key_hash % counts[row.topic])].append(row)
        except Exception as exc:  # broker unreachable: the relay's breaker decides what next
            outcome.error = exc
            return outcome
        await asyncio.gather(*(self._send_group(t, p, g, outcome) for (t, p), g in groups.items()))
        return outcome

    async def _send_group(self, topic: str, partition: int, rows: list[OutboxRow], outcome: PublishOutcome) -> None:
        assert self._producer is not None
        start = 0
        while start < len(rows):
            batch = self._producer.create_batch()
            end = start
            while end < len(rows):
                row = rows[end]
                if batch.append(key=row.key, value=row.value, timestamp=None, headers=row.headers) is None:
                    break
                end += 1
            if end == start:
                outcome.error = ValueError(f"outbox row {rows[start].id} is larger than max_batch_bytes")
                return
            batch.close()
            try:
                future = await self._producer.send_batch(batch, topic, partition=partition)
                # backstop above aiokafka's own request timeout, which normally fires first
                await asyncio.wait_for(future, timeout=self.request_timeout * 2)
            except Exception as exc:
                outcome.error = outcome.error or exc
                return
            outcome.confirmed.extend(r.id for r in rows[start:end])
            outcome.batches.append(end - start)
            start = end
