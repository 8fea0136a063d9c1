"""The consumer runtime on real PostgreSQL and Tansu: exactly-once effect, poison to the DLQ."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest

from eventbus.consumer.dlq import DeadLetterWriter, dlq_topic
from eventbus.consumer.messages import Decoded
from eventbus.consumer.processor import BatchProcessor, ProcessorConfig
from eventbus.db import plain_url
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec
from services.bonus.domain import CreditRule
from tests.integration.conftest import make_topics, read_topic
from tests.integration.consumer_helpers import (
    BONUS_EVENTS_STAGE,
    bonus_handlers,
    completed,
    event_record,
    manager,
    rating,
    record,
)

pytestmark = pytest.mark.integration
RESULTS = "hiring.task-results"


@pytest.fixture
async def setup(make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
                unique: Callable[[str], str]) -> AsyncIterator[tuple[BatchProcessor, str, str]]:
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    group = unique("bonus")
    await make_topics(bootstrap, TopicSpec(dlq_topic(group, RESULTS), 4))
    processor = BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas,
                               handlers=await bonus_handlers(url, CreditRule(completed=10, failed=2)),
                               dlq=DeadLetterWriter(bootstrap, group),
                               config=ProcessorConfig(backoff_base=0.01, backoff_cap=0.05))
    yield processor, url, group
    await processor.close()


async def _rows(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def test_credit_once_per_task_outcome_whatever_the_duplicates(setup: tuple[BatchProcessor, str, str]) -> None:
    processor, url, _ = setup
    creator, task = uuid.uuid4(), uuid.uuid4()
    first = completed(task, creator)
    redelivered = first  # the same record again (at-least-once)
    second_event_same_fact = completed(task, creator)  # a distinct event id for the same fact
    failed_other = completed(uuid.uuid4(), creator, name="TaskFailed")
    await processor.process([manager(creator), rating(task), first, redelivered])
    await processor.process([second_event_same_fact, redelivered, failed_other])
    ledger = await _rows(url, "SELECT task_id, outcome, amount FROM ledger ORDER BY id")
    assert [(r["outcome"], r["amount"]) for r in ledger] == [("completed", 10), ("failed", 2)]
    assert ledger[0]["task_id"] == task
    metrics = processor.metrics
    assert metrics.duplicates._value.get() == 2  # the redelivered record, twice
    assert metrics.repeated_facts._value.get() == 1  # the second event for the same (task, outcome)
    assert len(await _rows(url, "SELECT * FROM managers")) == 1


async def test_manager_versions_upcast_and_later_events_keep_earlier_fields(
        setup: tuple[BatchProcessor, str, str]) -> None:
    processor, url, _ = setup
    manager_id = uuid.uuid4()
    await processor.process([manager(manager_id, 0), manager(manager_id, 2)])
    row = (await _rows(url, "SELECT first_name, username FROM managers"))[0]
    assert (row["first_name"], row["username"]) == ("Ada", "ada.l")


@pytest.mark.parametrize(("poison", "error_class"), [
    (record(RESULTS, b"{not json"), "eventbus.envelope.EnvelopeError"),
    (record(RESULTS, b'{"meta": {"event_name": "TaskCompleted", "event_version": 0}, "payload": {}}'),
     "eventbus.consumer.errors.SchemaInvalid"),
    (event_record(RESULTS, "TaskCompleted", 7, {"task_id": str(uuid.uuid4())}),
     "eventbus.schemas.client.UnknownSchemaError"),
    (event_record(RESULTS, "NoSuchEvent", 0, {"x": 1}), "eventbus.schemas.client.UnknownSchemaError"),
])
async def test_poison_goes_to_the_dlq_and_later_good_records_are_applied(
        setup: tuple[BatchProcessor, str, str], bootstrap: str, poison: object, error_class: str) -> None:
    processor, url, group = setup
    creator = uuid.uuid4()
    task = uuid.uuid4()
    good_after = completed(task, creator)
    await processor.process([rating(task), poison, good_after])  # type: ignore[list-item]
    assert len(await _rows(url, "SELECT * FROM ledger")) == 1
    [dead] = await read_topic(bootstrap, dlq_topic(group, RESULTS), 1)
    headers = dict(dead.headers)
    assert dead.value == poison.value  # type: ignore[attr-defined]
    assert headers["dlq.error.category"] == b"non-retriable"
    assert headers["dlq.error.class"].decode() == error_class
    assert headers["dlq.original.offset"] == str(poison.offset).encode()  # type: ignore[attr-defined]
    assert headers["dlq.consumer.group"] == group.encode()


async def test_both_outcomes_interleaved_are_credited_by_one_statement_per_batch(
        setup: tuple[BatchProcessor, str, str]) -> None:
    processor, url, _ = setup
    credit = processor.handlers["TaskCompleted"].apply
    runs: list[list[str]] = []

    async def counting(conn: asyncpg.Connection, events: list[Decoded]) -> int | None:
        runs.append([e.event_name for e in events])
        return await credit(conn, events)

    for name in ("TaskCompleted", "TaskFailed"):  # both share one apply function, as the bonus handlers do
        processor.handlers[name] = dataclasses.replace(processor.handlers[name], apply=counting)
    creator = uuid.uuid4()
    names = ["TaskCompleted", "TaskFailed", "TaskCompleted", "TaskCompleted", "TaskFailed"]
    tasks = [uuid.uuid4() for _ in names]
    await processor.process([rating(t) for t in tasks])
    await processor.process([completed(t, creator, name=name) for t, name in zip(tasks, names, strict=True)])
    assert runs == [names]  # in order, in one run, not one statement per change of event name
    ledger = await _rows(url, "SELECT outcome FROM ledger ORDER BY id")
    assert [r["outcome"] for r in ledger] == ["completed", "failed", "completed", "completed", "failed"]
