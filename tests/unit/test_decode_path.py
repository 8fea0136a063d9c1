"""The processor's per-record hot path (`BatchProcessor.decode_batch`) and the keys it derives.

The dead-letter writer is the edge here: a recorder stands in for it (the database and the broker are
exercised by tests/integration/test_consumer_processor.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from eventbus.consumer.messages import RawMessage
from eventbus.consumer.processor import BatchProcessor, Handler, canonical_event_id
from eventbus.envelope import encode, kafka_headers, new_envelope
from eventbus.schemas.client import SchemaClient
from services.bonus.domain import lock_key, lock_keys

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


class RecordingDLQ:
    database: Any = "unused"

    def __init__(self) -> None:
        self.written: list[tuple[RawMessage, str]] = []
        self.partitions: dict[str, int] = {}

    async def write(self, message: RawMessage, failure: Any, attempts: int) -> None:
        self.written.append((message, failure.message))

    async def close(self) -> None:
        pass


def completed(event_id: str | None = None, version: int = 0, offset: int = 0) -> RawMessage:
    envelope = new_envelope("TaskCompleted", version, {"task_id": str(uuid.uuid4()), "creator_id": str(uuid.uuid4()),
                                                       "candidate_id": str(uuid.uuid4())}, producer="test")
    if event_id is not None:
        envelope["meta"]["event_id"] = event_id
    return RawMessage("hiring.task-results", 0, offset, None, b"k", encode(envelope), kafka_headers(envelope["meta"]))


def processor(asked: list[int]) -> tuple[BatchProcessor, RecordingDLQ]:
    def versions() -> frozenset[int]:
        asked.append(1)
        return frozenset({0})

    async def apply(conn: Any, events: list[Any]) -> None:
        raise AssertionError("not applied here")

    dlq = RecordingDLQ()
    return BatchProcessor(group="g", dsn="postgresql://unused", schemas=SchemaClient(None, fallback_dir=SCHEMAS),
                          handlers=[Handler("TaskCompleted", versions, apply)], dlq=dlq), dlq  # type: ignore[arg-type]


async def test_a_batch_keeps_its_good_records_in_order_and_dead_letters_the_rest() -> None:
    asked: list[int] = []
    p, dlq = processor(asked)
    not_json = RawMessage("hiring.task-results", 0, 1, None, b"k", b"{nope", [])
    wrong_version = completed(version=9, offset=2)
    bad_id = completed(event_id="not-a-uuid", offset=3)
    good = [completed(offset=0), completed(offset=4), completed(offset=5)]
    batch = [good[0], not_json, wrong_version, bad_id, good[1], good[2]]
    decoded = await p.decode_batch(batch)
    assert [d.raw.offset for d in decoded] == [0, 4, 5]
    assert [m.offset for m, _ in dlq.written] == [1, 2, 3]
    assert "not JSON" in dlq.written[0][1]
    assert "uuid" in dlq.written[2][1]  # the schema's format says what is wrong with the id
    assert asked and len(asked) <= 4  # once for the batch, once per record that took the slow path


async def test_the_switches_are_asked_once_per_batch_not_per_record() -> None:
    asked: list[int] = []
    p, _ = processor(asked)
    await p.decode_batch([completed()])  # loads the schema (slow path)
    asked.clear()
    decoded = await p.decode_batch([completed(offset=i) for i in range(500)])
    assert len(decoded) == 500
    assert len(asked) == 1


async def test_event_ids_are_in_postgres_text_form_so_dedupe_matches_any_case() -> None:
    p, _ = processor([])
    upper = str(uuid.uuid4()).upper()
    [decoded] = await p.decode_batch([completed(event_id=upper)])
    assert decoded.event_id == upper.lower() == str(uuid.UUID(upper))


def test_canonical_event_id_parses_what_is_not_hyphenated_and_refuses_garbage() -> None:
    u = uuid.uuid4()
    assert canonical_event_id({"meta": {"event_id": u.hex}}) == str(u)
    assert canonical_event_id({"meta": {"event_id": str(u).upper()}}) == str(u)
    with pytest.raises(ValueError):
        canonical_event_id({"meta": {"event_id": "x" * 36}})


def test_lock_keys_read_the_hex_as_the_uuid_bytes_would() -> None:
    for _ in range(2000):
        u = uuid.uuid4()
        expected = int.from_bytes(u.bytes[:8], "big", signed=True)
        assert lock_key(str(u)) == lock_key(str(u).upper()) == lock_key(u.hex) == expected
    edge = "ffffffff-ffff-ffff-0000-000000000000"
    assert lock_key(edge) == -1
    assert lock_keys([edge, "00000000-0000-0001-0000-000000000000", edge]) == [-1, 1]
