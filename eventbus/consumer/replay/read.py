"""Reading DLQ topics: which exist, and every record in them up to their end."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from eventbus.consumer.dlq import H_CATEGORY, H_CLASS, H_FAILED_AT, H_ORIGINAL_TOPIC, H_REPLAY_COUNT
from eventbus.consumer.messages import RawMessage
from eventbus.consumer.replay.progress import Progress
from eventbus.envelope import H_EVENT_ID, header_value
from eventbus.topics import partitions_of


class ReplayError(Exception):
    """A problem the operator can fix; the message says how."""


@dataclass(frozen=True, slots=True)
class DlqRecord(RawMessage):
    """A record read from a DLQ topic, with what its `dlq.*` headers say.

    A copy read from the group's database (`dlq_records`, see `stored`) has `stored_offset`, where the broker had
    put it, and `offset` -id: a broker that lost its log gives the same offsets to new records."""

    stored_offset: int | None = None

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def from_database(self) -> bool:
        return self.stored_offset is not None

    @property
    def ref(self) -> str:
        if self.stored_offset is not None:
            return f"{self.topic}[{self.partition}]@db{-self.offset}"
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def category(self) -> str:
        return self.header(H_CATEGORY) or "?"

    @property
    def error_class(self) -> str:
        return self.header(H_CLASS) or "?"

    @property
    def original_topic(self) -> str | None:
        return self.header(H_ORIGINAL_TOPIC)

    @property
    def replay_count(self) -> int:
        try:
            return int(self.header(H_REPLAY_COUNT) or 0)
        except ValueError:
            return 0

    @property
    def failed_at(self) -> datetime | None:
        text = self.header(H_FAILED_AT)
        if text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC) if self.timestamp_ms else None

    @property
    def event_id(self) -> str | None:
        found = self.header(H_EVENT_ID)
        if found:
            return found
        try:
            doc = json.loads(self.value or b"")
            return str(doc["meta"]["event_id"])
        except (ValueError, TypeError, KeyError):
            return None


def dlq_prefix(group: str | None) -> str:
    return f"dlq.{group}." if group else "dlq."


def parking_prefix(group: str | None) -> str:
    return f"parking.{group}." if group else "parking."


async def dlq_topics(bootstrap: str, group: str | None, source_topic: str | None = None) -> list[str]:
    """The DLQ topics of `group` (all groups when None), optionally only the one for `source_topic`."""
    return await topics_named(bootstrap, dlq_prefix(group), source_topic)


async def parking_topics(bootstrap: str, group: str | None, source_topic: str | None = None) -> list[str]:
    """The parking topics of `group` (all groups when None), optionally only the one for `source_topic`."""
    return await topics_named(bootstrap, parking_prefix(group), source_topic)


async def topics_named(bootstrap: str, prefix: str, source_topic: str | None = None) -> list[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await start_client(consumer, bootstrap)
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(prefix))
    finally:
        await consumer.stop()
    if source_topic:
        topics = [t for t in topics if t.endswith("." + source_topic)]
    return topics


async def read_records(bootstrap: str, topics: Sequence[str], progress: TextIO | None = None,
                       timeout: float = 60.0, starts: dict[tuple[str, int], int] | None = None) -> list[DlqRecord]:
    """Every record of `topics` from the beginning up to their ends at the time of the call, in
    (topic, partition, offset) order; `starts` gets where each partition's log begins."""
    if not topics:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000,
                                fetch_max_wait_ms=100)
    await start_client(consumer, bootstrap)
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            try:
                parts = await partitions_of(consumer, topic, attempts=5)
            except LookupError:
                raise ReplayError(f"no topic {topic} on {bootstrap}; `dlq-list` shows the DLQ topics") from None
            partitions += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        begins = await consumer.beginning_offsets(partitions)
        if starts is not None:
            starts.update({(tp.topic, tp.partition): offset for tp, offset in begins.items()})
        todo = {tp for tp in partitions if ends[tp] > begins[tp]}
        total = sum(ends[tp] - begins[tp] for tp in todo)
        records: list[DlqRecord] = []
        bar = Progress("reading", total, progress)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                positions = {tp: await consumer.position(tp) for tp in sorted(todo)}
                behind = ", ".join(f"{tp.topic}[{tp.partition}] at {at} of {ends[tp]}" for tp, at in positions.items())
                raise ReplayError(f"could not read to the end in {timeout:.0f} s: {behind}; is the broker healthy?")
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, recs in batch.items():
                # Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, short of the
                # log's end when that batch holds several records; a fetch's high watermark is right.
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                for r in recs:
                    if r.offset < ends[tp]:
                        records.append(DlqRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                                                 list(r.headers or [])))
                bar.update(len(records))
            for tp in list(todo):
                if tp in batch and await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        bar.done()
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        await consumer.stop()


async def start_client(client: AIOKafkaConsumer | AIOKafkaProducer, bootstrap: str) -> None:
    try:
        await asyncio.wait_for(client.start(), 15)
    except (KafkaError, OSError, TimeoutError) as exc:
        await client.stop()
        raise ReplayError(f"cannot reach the broker at {bootstrap} ({exc!r}); is the stack running? "
                          "(`make run`, or set KAFKA_BOOTSTRAP_SERVERS / pass --bootstrap)") from exc
