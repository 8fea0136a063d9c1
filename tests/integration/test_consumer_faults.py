"""Consumer faults made to happen on real PostgreSQL and Tansu: poison of every kind, a database outage,
and replay from the DLQ after the fix (once, twice, and round and round into the parking topic)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest
from aiokafka.structs import ConsumerRecord

from eventbus.consumer.dlq import DeadLetterWriter, dlq_topic, parking_topic
from eventbus.consumer.messages import Decoded, RawMessage
from eventbus.consumer.processor import BatchProcessor, Handler, ProcessorConfig
from eventbus.consumer.replay import Filters, ReplayError, ReplayOptions, dlq_topics, main, read_records, replay
from eventbus.db import plain_url
from eventbus.migrate import upgrade
from eventbus.schemas.client import SchemaClient
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.topics import TopicSpec
from services.bonus.domain import CreditRule
from tests.integration.conftest import make_topics, read_topic
from tests.integration.consumer_helpers import BONUS_EVENTS_STAGE, bonus_handlers, completed, manager, record
from tests.waiting import eventually

pytestmark = pytest.mark.integration
RULE = CreditRule(completed=10, failed=2)
FAST = ProcessorConfig(backoff_base=0.01, backoff_cap=0.2, breaker_threshold=2, breaker_reset=0.3)


async def _rows(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _consumer_setup(url: str, bootstrap: str, unique: Callable[[str], str],
                          source: str) -> tuple[str, str, str]:
    """(database URL, a fresh group, a fresh source topic) with the topic and its DLQ and parking topics."""
    group, topic = unique("bonus"), unique(source)
    await make_topics(bootstrap, *(TopicSpec(name, 4) for name in (topic, dlq_topic(group, topic),
                                                                   parking_topic(group, topic))))
    return url, group, topic


def _processor(url: str, group: str, bootstrap: str, schemas: SchemaClient, hs: list[Handler],
               config: ProcessorConfig = FAST) -> BatchProcessor:
    return BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas, handlers=hs,
                          dlq=DeadLetterWriter(bootstrap, group), config=config)


def _raw(r: ConsumerRecord) -> RawMessage:  # type: ignore[type-arg]
    return RawMessage(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, list(r.headers))


def _with(hs: list[Handler], name: str, apply: object) -> list[Handler]:
    return [Handler(h.event_name, h.versions, apply) if h.event_name == name else h for h in hs]  # type: ignore[arg-type]


# -- every poison kind --------------------------------------------------------------------------------------
class Flaky(Exception):
    pass


def _failing_on_marked(real: Handler, error: Exception) -> Callable[..., object]:
    """The real credit handler, except that it raises `error` for an event whose candidate id is marked."""

    async def apply(conn: asyncpg.Connection, events: list[Decoded]) -> int | None:
        if any(e.payload["candidate_id"].startswith("00000000") for e in events):
            raise error
        return await real.apply(conn, events)

    return apply


@pytest.mark.parametrize(("kind", "error_class", "attempts"), [
    ("tombstone", "eventbus.envelope.EnvelopeError", "1"),
    ("unsupported-version", "eventbus.consumer.errors.UnsupportedEvent", "1"),
    ("known-bug", "builtins.KeyError", "1"),
    ("unknown-error", "tests.integration.test_consumer_faults.Flaky", "3"),
])
async def test_each_poison_kind_is_dead_lettered_and_later_records_on_the_partition_apply(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str],
        kind: str, error_class: str, attempts: str) -> None:
    url, group, topic = await _consumer_setup(make_database("bonus", *BONUS_EVENTS_STAGE), bootstrap, unique, "results")
    creator, poison_task = uuid.uuid4(), uuid.uuid4()
    hs = await bonus_handlers(url, RULE, manager_created_versions=[0, 1])
    poison: RawMessage
    if kind == "tombstone":
        poison = record(topic, None, partition=2)
    elif kind == "unsupported-version":
        poison = manager(uuid.uuid4(), version=2, topic=topic, partition=2)
    else:
        [credit] = [h for h in hs if h.event_name == "TaskCompleted"]
        error = KeyError("rating") if kind == "known-bug" else Flaky("something nobody classified")
        hs = _with(hs, "TaskCompleted", _failing_on_marked(credit, error))
        poison = completed(poison_task, creator, topic=topic, partition=2, candidate_id=uuid.UUID(int=7))  # marked
    good = [completed(uuid.uuid4(), creator, topic=topic, partition=2, name="TaskFailed") for _ in range(3)]
    processor = _processor(url, group, bootstrap, schemas, hs)
    try:
        await processor.process([good[0], poison, *good[1:]])  # one batch, the poison in the middle
    finally:
        await processor.close()
    assert len(await _rows(url, "SELECT * FROM ledger")) == 3  # the good ones around it were applied
    [dead] = await read_topic(bootstrap, dlq_topic(group, topic), 1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert (dead.partition, dead.key, dead.value) == (2, poison.key, poison.value)
    assert headers["dlq.error.category"] == ("unknown" if kind == "unknown-error" else "non-retriable")
    assert headers["dlq.error.class"] == error_class
    assert headers["dlq.attempts"] == attempts
    assert headers["dlq.original.topic"] == topic and headers["dlq.original.partition"] == "2"
    assert headers["dlq.original.offset"] == str(poison.offset)
    assert headers["dlq.consumer.group"] == group and headers["dlq.failed.at"].endswith("Z")
    assert headers["dlq.error.message"] and "Traceback" in headers["dlq.error.stacktrace"]
    for k, v in poison.headers:  # the original headers pass through
        assert (k, v) in dead.headers



# -- database outage ----------------------------------------------------------------------------------------
async def test_database_outage_blocks_the_consumer_then_it_resumes_with_nothing_dead_lettered(
        private_pg: EmbeddedPostgres, bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    with ThreadPoolExecutor(1) as pool:
        for target in BONUS_EVENTS_STAGE:
            migrated = pool.submit(upgrade, "bonus", private_pg.url, target, database="bonus").result()
    url, group, topic = await _consumer_setup(migrated, bootstrap, unique, "results")
    creator = uuid.uuid4()
    processor = _processor(url, group, bootstrap, schemas, await bonus_handlers(url, RULE))
    try:
        await processor.process([completed(uuid.uuid4(), creator, topic=topic, name="TaskFailed")])  # pool warm
        await asyncio.to_thread(private_pg.kill)  # the database dies
        batch = [completed(uuid.uuid4(), creator, topic=topic, name="TaskFailed") for _ in range(5)]
        work = asyncio.create_task(processor.process(batch))

        async def blocked_with_breaker_open() -> bool:
            return processor.metrics.blocked._value.get() == 1 and processor.breaker.state.label == "open"

        await eventually(blocked_with_breaker_open, what="the consumer to block with its breaker open")
        assert not work.done()  # blocked in place, not dead-lettered, not skipped
        await asyncio.to_thread(private_pg.start)
        await asyncio.wait_for(work, 60)
    finally:
        await processor.close()
    assert len(await _rows(url, "SELECT * FROM ledger")) == 6
    assert processor.metrics.blocked._value.get() == 0 and processor.breaker.state.label == "closed"
    assert sum(s.value for m in processor.metrics.dead_lettered.collect() for s in m.samples
               if s.name.endswith("_total")) == 0
    assert await read_records(bootstrap, [dlq_topic(group, topic)]) == []


# -- replay -------------------------------------------------------------------------------------------------
async def test_replay_after_the_fix_applies_once_and_replaying_again_is_still_once(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url, group, topic = await _consumer_setup(make_database("bonus", *BONUS_EVENTS_STAGE), bootstrap, unique,
                                              "managers")
    v2_manager, v1_manager = uuid.uuid4(), uuid.uuid4()
    v2 = manager(v2_manager, version=2, topic=topic, partition=1)
    before_fix = _processor(url, group, bootstrap, schemas,
                            await bonus_handlers(url, RULE, manager_created_versions=[0, 1]))
    try:
        await before_fix.process([v2, manager(v1_manager, version=1, topic=topic)])
    finally:
        await before_fix.close()
    assert [r["id"] for r in await _rows(url, "SELECT id FROM managers")] == [v1_manager]
    assert await dlq_topics(bootstrap, group) == [dlq_topic(group, topic)]

    options = ReplayOptions(group=group, operator="test")
    dry = await replay(bootstrap, url, ReplayOptions(group=group, operator="test", dry_run=True), out=None)
    assert (dry.selected, dry.replayed, dry.result) == (1, 1, "dry-run")  # would replay 1
    assert await _source_records(bootstrap, topic) == []  # a dry run sends nothing

    first = await replay(bootstrap, url, options, out=None)
    assert (first.selected, first.replayed, first.parked, first.refused, first.result) == (1, 1, 0, 0, "ok")
    again_default = await replay(bootstrap, url, options, out=None)  # already replayed: skipped
    assert (again_default.selected, again_default.skipped) == (0, 1)
    second = await replay(bootstrap, url, ReplayOptions(group=group, operator="test", again=True), out=None)
    assert second.replayed == 1

    replayed = await _source_records(bootstrap, topic, 2)
    assert [r.partition for r in replayed] == [1, 1]  # home to the partition it came from
    assert all(r.value == v2.value and r.key == v2.key for r in replayed)  # same event, same event_id
    assert [dict(r.headers)["dlq.replay.count"] for r in replayed] == [b"1", b"1"]
    assert not any(k.startswith("dlq.") and k not in ("dlq.replay.count", "dlq.replay.id") for r in replayed
                   for k, _ in r.headers)

    fixed = _processor(url, group, bootstrap, schemas, await bonus_handlers(url, RULE))  # the fix: v2 is accepted
    try:
        await fixed.process([_raw(r) for r in replayed])
    finally:
        await fixed.close()
    rows = await _rows(url, "SELECT id, username FROM managers WHERE id = $1", v2_manager)
    assert [(r["id"], r["username"]) for r in rows] == [(v2_manager, "ada.l")]
    assert fixed.metrics.duplicates._value.get() == 1  # the second replay was recognised by its event_id
    processed = await _rows(url, "SELECT count(*) AS n FROM processed_events WHERE consumer = $1", group)
    assert processed[0]["n"] == 2

    log = await _rows(url, "SELECT dry_run, selected, replayed, result FROM dlq_replays ORDER BY id")
    assert [tuple(r) for r in log] == [(True, 1, 1, "dry-run"), (False, 1, 1, "ok"), (False, 0, 0, "ok"),
                                       (False, 1, 1, "ok")]
    actions = await _rows(url, "SELECT action, event_id, target_topic FROM dlq_replayed_records ORDER BY replay_id")
    event_id = dict(v2.headers)["event_id"].decode()
    assert [(r["action"], r["event_id"], r["target_topic"]) for r in actions] == [
        ("would-replay", event_id, topic), ("replayed", event_id, topic), ("replayed", event_id, topic)]


async def test_a_record_that_keeps_failing_is_parked_after_max_replays(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url, group, topic = await _consumer_setup(make_database("bonus", *BONUS_EVENTS_STAGE), bootstrap, unique,
                                              "managers")
    never_fixed = await bonus_handlers(url, RULE, manager_created_versions=[0])
    processor = _processor(url, group, bootstrap, schemas, never_fixed)
    poison = manager(uuid.uuid4(), version=1, topic=topic)
    try:
        await processor.process([poison])
        for round_ in (1, 2):  # replay; it fails again and comes back to the DLQ with its count
            summary = await replay(bootstrap, url, ReplayOptions(group=group, operator="t", max_replays=2), out=None)
            assert summary.replayed == 1, round_
            [back] = (await _source_records(bootstrap, topic, round_))[-1:]
            await processor.process([_raw(back)])
        dead = await read_records(bootstrap, [dlq_topic(group, topic)])
        assert [r.replay_count for r in dead] == [0, 1, 2]  # the count survives dead-lettering, headers do not grow
        assert all(len(r.headers) == len(dead[0].headers) + (1 if r.replay_count else 0) for r in dead)
        summary = await replay(bootstrap, url, ReplayOptions(group=group, operator="t", max_replays=2), out=None)
    finally:
        await processor.close()
    assert (summary.replayed, summary.parked) == (0, 1)
    [parked] = await read_topic(bootstrap, parking_topic(group, topic), 1)
    assert parked.value == poison.value and dict(parked.headers)["dlq.replay.count"] == b"2"


async def test_filters_and_the_target_allowlist(make_database: Callable[[str], str], bootstrap: str,
                                               schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    url, group, topic = await _consumer_setup(make_database("bonus", *BONUS_EVENTS_STAGE), bootstrap, unique, "results")
    processor = _processor(url, group, bootstrap, schemas, await bonus_handlers(url, RULE))
    try:
        await processor.process([record(topic, b"not json", key=b"k1"), record(topic, None, key=b"k2")])
    finally:
        await processor.close()
    only_k1 = await replay(bootstrap, url, ReplayOptions(group=group, operator="t", dry_run=True,
                                                         filters=Filters(keys=frozenset({"k1"}))), out=None)
    assert [r.key for r, _, _ in only_k1.actions] == [b"k1"]
    by_class = await replay(bootstrap, url, ReplayOptions(
        group=group, operator="t", dry_run=True,
        filters=Filters(error_classes=frozenset({"eventbus.envelope.EnvelopeError"}))), out=None)
    assert by_class.selected == 2
    limited = await replay(bootstrap, url, ReplayOptions(group=group, operator="t", dry_run=True, limit=1), out=None)
    assert limited.selected == 1
    refused = await replay(bootstrap, url, ReplayOptions(group=group, operator="t", target="somewhere.else"),
                           out=None)
    assert (refused.refused, refused.replayed, refused.result) == (2, 0, "partial")
    assert "not allowed" in refused.actions[0][2] and "--allow-topic" in refused.actions[0][2]


async def _source_records(bootstrap: str, topic: str, count: int = 0) -> list[ConsumerRecord]:  # type: ignore[type-arg]
    if count == 0:
        return [r for r in await read_records(bootstrap, [topic])]  # type: ignore[misc]
    return sorted(await read_topic(bootstrap, topic, count), key=lambda r: (r.partition, r.offset))


def test_the_cli_names_the_fix_when_the_broker_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bootstrap", "127.0.0.1:9", "list"]) == 2
    assert "is the stack running?" in capsys.readouterr().err


async def test_reading_a_dlq_gets_every_record_of_multi_record_batches(bootstrap: str,
                                                                       unique: Callable[[str], str]) -> None:
    """Records produced in one batch (Tansu's ListOffsets(latest) under-reports the end of such logs)."""
    from aiokafka import AIOKafkaProducer

    topic = unique("dlq.batched")
    await make_topics(bootstrap, TopicSpec(topic, 1))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=str(i).encode(), partition=0) for i in range(25)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    records = await read_records(bootstrap, [topic])
    assert [r.value for r in records] == [str(i).encode() for i in range(25)]
    with pytest.raises(ReplayError, match=rf"could not read to the end in 0 s: {topic}\[0\] at 0 of"):
        await read_records(bootstrap, [topic], timeout=0)  # a broker that never delivers


def test_showing_a_record_of_a_missing_topic_names_the_fix(bootstrap: str, unique: Callable[[str], str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bootstrap", bootstrap, "show", unique("dlq.nothing-here"), "0", "0"]) == 2
    assert "`dlq-list`" in capsys.readouterr().err


async def test_replay_refuses_a_group_without_dlqs_and_an_unreachable_log(bootstrap: str,
                                                                          unique: Callable[[str], str]) -> None:
    with pytest.raises(ReplayError, match="no DLQ topics for group"):
        await replay(bootstrap, "postgresql://127.0.0.1:9/x", ReplayOptions(group=unique("nobody")), out=None)
    _, group, _ = await _consumer_setup("unused", bootstrap, unique, "results")  # its DLQ topic exists
    with pytest.raises(ReplayError, match="cannot reach the replay log database"):
        await replay(bootstrap, "postgresql://127.0.0.1:9/bonus", ReplayOptions(group=group), out=None)
