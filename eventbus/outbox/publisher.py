"""Publishing outbox rows to Kafka with one batch in flight per topic-partition.

Rows are grouped by (topic, partition) in id order; each group is sent as a sequence of record
batches, the next only after the broker confirmed the previous one, and a group stops at its first
failure. So nothing of a key is ever written after a failed earlier row of the same key: a retry
may duplicate a confirmed-but-unacknowledged batch, never reorder. The partition is computed from
the stored murmur2 hash exactly as Kafka's default partitioner would.

The offsets the broker confirms come back per partition (the offset of the last record confirmed): the relay
keeps them to notice a broker that lost its log (`eventbus.outbox.loss`). A group also stops when a batch lands
at or below the floor it was given (the log went back), and `probe` asks the broker, over the producer's own
connection, which topics exist and where each partition's log ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.protocol.offset import OffsetRequest

from eventbus.outbox.store import OutboxRow

log = logging.getLogger(__name__)

Idempotence = Literal["auto", "on", "off"]


TopicPartition = tuple[str, int]


@dataclass
class PublishOutcome:
    confirmed: list[int] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)  # sizes of the confirmed record batches
    error: BaseException | None = None
    #: the offset of the last record the broker confirmed, per partition
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    #: partitions where a batch landed at or below the floor: (floor, where it landed)
    went_back: dict[TopicPartition, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """What the broker holds: the topics, and where the log of each partition asked about ends."""

    topics: dict[str, int]  # topic -> partition count
    #: where each partition's log ends: at least where it ends (ListOffsets latest: Tansu answers the last batch's
    #: base offset + 1), exact (a fetch's high watermark) for those that end at or below the offset asked about
    ends: dict[TopicPartition, int]


class ProbeFailed(RuntimeError):
    pass


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

    def connections(self) -> list[Any]:
        """The producer's open broker connections (aiokafka's private `client._conns`): a new one may lead to a
        broker that restarted since the last probe."""
        if self._producer is None:
            return []
        return list(getattr(self._producer.client, "_conns", {}).values())

    async def probe(self, highs: Mapping[TopicPartition, int]) -> Probe:
        """Which topics exist (Metadata for all topics: that creates none) and where the log of each partition of
        `highs` ends, asked over the producer's own connections: ListOffsets(latest), and where that is not past
        the partition's high (Tansu answers short of the end), a fetch from just after it, whose high watermark is
        the end (an empty answer when the log holds it; out of range when it does not)."""
        assert self._producer is not None
        client = self._producer.client
        timeout = self.request_timeout * 2
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout=timeout)
        topics = {t: len(metadata.partitions_for_topic(t) or ()) for t in metadata.topics()}
        leaders: dict[TopicPartition, int] = {}
        for topic, partition in highs:
            if topic in topics:
                leader = metadata.leader_for_partition(AioTopicPartition(topic, partition))
                if leader is None or leader < 0:
                    raise ProbeFailed(f"no leader for {topic}[{partition}]")
                leaders[(topic, partition)] = leader
        ends: dict[TopicPartition, int] = {}
        for leader, asked in _by_leader(leaders, lambda tp: -1).items():  # -1: the latest offset
            response = await asyncio.wait_for(client.send(leader, OffsetRequest(-1, 0, asked)), timeout=timeout)
            for topic, answers in response.topics:
                for answer in answers:
                    partition, error_code = answer[0], answer[1]
                    offset = answer[3] if len(answer) > 3 else (answer[2][0] if answer[2] else 0)
                    if error_code == 3:  # UNKNOWN_TOPIC_OR_PARTITION: gone since the metadata answer
                        topics.pop(topic, None)
                    elif error_code:
                        raise ProbeFailed(f"ListOffsets {topic}[{partition}]: error code {error_code}")
                    else:
                        ends[(topic, partition)] = offset
        unsure = {tp: leader for tp, leader in leaders.items() if tp in ends and ends[tp] <= highs[tp]}
        for leader, asked in _by_leader(unsure, lambda tp: highs[tp] + 1).items():
            # Tansu answers a fetch that may not wait (0 ms) with no partitions at all: it may wait 1 ms
            fetched = FetchRequest(1, 0, 1 << 16, 0, [(t, [(p, o, 1024) for p, o in ps]) for t, ps in asked])
            response = await asyncio.wait_for(client.send(leader, fetched), timeout=timeout)
            answered = set()
            for topic, answers in response.topics:
                for answer in answers:
                    partition, error_code, high_watermark = answer[0], answer[1], answer[2]
                    answered.add((topic, partition))
                    if error_code == 1:  # OFFSET_OUT_OF_RANGE: the log ends before the offset after the high
                        continue
                    if error_code:
                        raise ProbeFailed(f"Fetch {topic}[{partition}]: error code {error_code}")
                    ends[(topic, partition)] = max(ends[(topic, partition)], high_watermark)
            unanswered = [f"{t}[{p}]" for t, ps in asked for p, _ in ps if (t, p) not in answered]
            if unanswered:  # nothing learnt: not a loss
                raise ProbeFailed(f"the broker did not say where {', '.join(unanswered[:3])} end")
        return Probe(topics, ends)

    async def publish(self, rows: list[OutboxRow], floor: Mapping[TopicPartition, int] | None = None
                      ) -> PublishOutcome:
        """Send `rows`; a partition's group stops after a batch the broker put at or below `floor` (its log went
        back: what follows must wait for the relay to publish the retained window again)."""
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
        floor = floor or {}
        await asyncio.gather(*(self._send_group(t, p, g, outcome, floor.get((t, p), -1))
                               for (t, p), g in groups.items()))
        return outcome

    async def _send_group(self, topic: str, partition: int, rows: list[OutboxRow], outcome: PublishOutcome,
                          floor: int) -> None:
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
                metadata = await asyncio.wait_for(future, timeout=self.request_timeout * 2)
            except Exception as exc:
                outcome.error = outcome.error or exc
                return
            outcome.confirmed.extend(r.id for r in rows[start:end])
            outcome.batches.append(end - start)
            tp = (topic, partition)
            outcome.offsets[tp] = max(outcome.offsets.get(tp, -1), metadata.offset + end - start - 1)
            start = end
            if metadata.offset <= floor:
                outcome.went_back[tp] = (floor, metadata.offset)
                return


def _by_leader(leaders: Mapping[TopicPartition, int], offset: Callable[[TopicPartition], int]
               ) -> dict[int, list[tuple[str, list[tuple[int, int]]]]]:
    """Per leader, the (topic, [(partition, offset)]) of a request to it."""
    grouped: dict[int, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for tp, leader in sorted(leaders.items()):
        grouped[leader][tp[0]].append((tp[1], offset(tp)))
    return {leader: list(topics.items()) for leader, topics in grouped.items()}
