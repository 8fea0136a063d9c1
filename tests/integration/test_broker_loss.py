"""The broker loses its log, nothing is lost (real PostgreSQL, a private Tansu that restarts empty).

A relay publishes N events; the broker restarts (memory storage: it comes back with no topics, no records, no
groups). The relays notice, declare the loss once, and publish the outbox's retained window again: every event
is on the new log in per-key commit order, the loss and the re-published rows are counted, and a consumer that
had applied them all skips every one as a duplicate and applies what is new exactly once. With two relays
sharing the lease partitions, and with a relay that restarts while the broker was away, the same holds.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from eventbus.consumer.dlq import DeadLetterWriter, dlq_topic, parking_topic
from eventbus.consumer.messages import Decoded, RawMessage
from eventbus.consumer.processor import BatchProcessor, Handler, ProcessorConfig
from eventbus.consumer.replay import Filters, ReplayOptions, dlq_topics, main, read_records, replay
from eventbus.db import plain_url
from eventbus.outbox.relay import Relay
from eventbus.outbox.store import status_report
from eventbus.schemas.client import SchemaClient
from eventbus.stack.broker import TansuBroker
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.topics import TopicSpec
from tests.integration.conftest import make_topics
from tests.integration.consumer_helpers import BONUS_EVENTS_STAGE, bonus_handlers, manager
from tests.integration.outbox_helpers import (
    EVENT,
    FAST,
    backlog_rows,
    bulk_insert,
    check_topic,
    read_all,
    running_relay,
    unpublished,
    writer,
)
from tests.integration.test_private_hooks import EFFECTS, Workers, _bonus_database
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.integration

LOSS_FAST = replace(FAST, loss_check_interval=0.3)
#: leases that outlive a relay's rounds against a broker that is away (each relay keeps its share through it)
LOSS_TWO = replace(LOSS_FAST, lease_ttl=15.0)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[TansuBroker]:
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


def restart_empty(broker: TansuBroker) -> float:
    """Kill the broker and start a new one on the same port: memory storage, so it comes back empty."""
    broker.stop()
    broker.start()
    return time.monotonic()


def _sample(relay: Relay, name: str) -> float:
    value = relay.metrics.registry.get_sample_value(name, {"service": relay.service})
    return 0.0 if value is None else value


async def _rows(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _backlog(url: str, schemas: SchemaClient, topic: str, *, keys: list[str], count: int,
                   expected: dict[str, list[str]]) -> list[str]:
    """COPY `count` events on `keys` into the outbox (appending to each key's expected order); their ids."""
    nxt = {k: len(expected[k]) for k in keys}
    pairs = []
    rng = random.Random()
    for _ in range(count):
        key = rng.choice(keys)
        pairs.append((key, nxt[key]))
        nxt[key] += 1
    rows, ids = backlog_rows(writer(topic, schemas), pairs)
    await bulk_insert(url, rows)
    for (key, _), event_id in zip(pairs, ids, strict=True):
        expected[key].append(event_id)
    return ids


async def _all_published(url: str) -> bool:
    return await unpublished(url) == 0


async def _on_topic(bootstrap: str, topic: str, count: int) -> bool:
    try:
        records = await asyncio.wait_for(read_all(bootstrap, topic, timeout=5), 10)
    except Exception:  # the topic is not declared again yet
        return False
    return len({dict(r.headers)["event_id"] for r in records}) >= count


# -- a consumer that applies each event once: a BatchProcessor with the backbone's dedupe --------------------------

class Applied:
    """A BatchProcessor on the outbox database (it has `processed_events`) whose handler records each event."""

    def __init__(self, url: str, bootstrap: str, schemas: SchemaClient, group: str) -> None:
        self.url = url
        self.bootstrap = bootstrap
        self.group = group

        async def apply(conn: asyncpg.Connection, items: list[Decoded]) -> None:
            await conn.executemany("INSERT INTO loss_effects (event_id) VALUES ($1)", [(i.event_id,) for i in items])

        self.processor = BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas,
                                        handlers=[Handler(EVENT, frozenset({0}), apply)],
                                        dlq=DeadLetterWriter(bootstrap, group),
                                        config=ProcessorConfig(backoff_base=0.01, backoff_cap=0.2))

    async def setup(self) -> None:
        await _rows(self.url, "CREATE TABLE IF NOT EXISTS loss_effects (event_id uuid NOT NULL)")

    async def consume(self, topic: str) -> None:
        """Everything on the topic now, from the beginning, in per-partition order (what a worker reads)."""
        records = await read_all(self.bootstrap, topic)
        await self.processor.process([RawMessage(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value,
                                                 r.headers) for r in records])

    def duplicates(self) -> float:
        value = self.processor.metrics.registry.get_sample_value("consumer_duplicates_total", {"group": self.group})
        return value or 0.0

    async def effects(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for row in await _rows(self.url, "SELECT event_id::text FROM loss_effects"):
            counts[row[0]] += 1
        return counts


@pytest.fixture
async def applied(make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
                  unique: Callable[[str], str]) -> AsyncIterator[Callable[[str], Applied]]:
    made: list[Applied] = []

    def make(url: str) -> Applied:
        made.append(Applied(url, broker.bootstrap_servers, schemas, unique("loss-consumer")))
        return made[-1]

    yield make
    for a in made:
        await a.processor.close()


def _once_each(effects: dict[str, int], ids: list[str]) -> None:
    missing = [e for e in ids if e not in effects]
    doubled = {e: n for e, n in effects.items() if n > 1}
    assert not missing and not doubled and set(effects) == set(ids), (
        f"{len(missing)} of {len(ids)} never applied, {len(doubled)} applied more than once, "
        f"{len(set(effects) - set(ids))} unknown")


# -- the private internals the loss handling relies on: an upgrade that changes one fails here, by name ----------

def _private_names() -> list[tuple[str, Callable[[], object]]]:
    from aiokafka.client import AIOKafkaClient
    from aiokafka.conn import AIOKafkaConnection
    from aiokafka.consumer.subscription_state import TopicPartitionState
    from faust.transport.consumer import Consumer as FaustConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    faust_consumer = inspect.getsource(FaustConsumer)
    return [
        ("aiokafka AIOKafkaClient._conns (KafkaPublisher.connections: a new connection is checked first)",
         lambda: "self._conns = {}" in inspect.getsource(AIOKafkaClient)),
        ("aiokafka AIOKafkaConnection.connected", lambda: AIOKafkaConnection.connected),
        ("aiokafka AIOKafkaClient.fetch_all_metadata (KafkaPublisher.probe)",
         lambda: AIOKafkaClient.fetch_all_metadata),
        ("aiokafka TopicPartitionState.has_valid_position / position (worker._position)",
         lambda: (TopicPartitionState.has_valid_position, TopicPartitionState.position)),
        ("faust Consumer._read_offset, _committed_offset, _acked, _acked_index, _gap, _unacked_messages "
         "(worker.LogResetGuard)",
         lambda: all(f"self.{n} = " in faust_consumer for n in (
             "_read_offset", "_committed_offset", "_acked", "_acked_index", "_gap", "_unacked_messages"))),
        ("faust AIOKafkaConsumerThread.call_thread and ._consumer (worker.LogResetGuard)",
         lambda: AIOKafkaConsumerThread.call_thread and "self._consumer = " in inspect.getsource(
             AIOKafkaConsumerThread)),
    ]


@pytest.mark.parametrize(("what", "get"), _private_names())
def test_the_private_names_the_loss_handling_uses_still_exist(what: str, get: Callable[[], object]) -> None:
    try:
        assert get(), f"{what} is gone"
    except AttributeError as exc:
        pytest.fail(f"{what} is gone: {exc}")


# -- one relay -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tree", ["hiring", "management"])
async def test_a_relay_republishes_the_retained_window_after_the_broker_restarts_empty(
        tree: str, make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str], applied: Callable[[str], Applied]) -> None:
    """Both relaying services' trees carry the backbone branch (the loss tables) from their first stage."""
    url = make_database(tree)
    bootstrap = broker.bootstrap_servers
    topic = TopicSpec(unique("loss-one"), 3)
    await make_topics(bootstrap, topic)
    keys = [str(uuid.uuid4()) for _ in range(40)]
    expected: dict[str, list[str]] = defaultdict(list)
    before = await _backlog(url, schemas, topic.name, keys=keys, count=3000, expected=expected)
    consumer = applied(url if tree == "hiring" else make_database("hiring"))  # a database with processed_events
    await consumer.setup()

    async with running_relay(url, bootstrap, topic, LOSS_FAST) as relay:
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog published")
        check_topic(await read_all(bootstrap, topic.name), expected, topic.partitions)
        await consumer.consume(topic.name)
        assert consumer.duplicates() == 0
        _once_each(await consumer.effects(), before)

        back = restart_empty(broker)
        # written while the broker was away or just back: they must come after the window, per key
        after = await _backlog(url, schemas, topic.name, keys=keys, count=500, expected=expected)
        await eventually(lambda: _on_topic(bootstrap, topic.name, 3500), timeout=30,
                         what="every event on the broker again")
        republished_in = time.monotonic() - back
        await eventually(lambda: _all_published(url), timeout=10, what="all rows marked published")
        records = await read_all(bootstrap, topic.name)
        losses, republished = _sample(relay, "outbox_broker_losses_total"), _sample(relay, "outbox_republished_total")

    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == 3500
    assert losses == 1, f"the loss was counted {losses} times"
    assert republished == 3000, f"{republished} rows re-published, expected the 3000 the broker lost"
    conn = await asyncpg.connect(plain_url(url))
    try:
        status = (await status_report(conn))["broker_losses"]  # what `outbox-status` prints
    finally:
        await conn.close()
    assert status["count"] == 1 and status["last"]["republished"] == 3000, status
    assert topic.name in status["last"]["evidence"]

    await consumer.consume(topic.name)
    assert consumer.duplicates() == 3000 + result.duplicates, "the consumer did not skip what it had applied"
    _once_each(await consumer.effects(), before + after)
    print(f"\n{tree}: broker back -> all {result.distinct} events on it again in {republished_in:.2f}s; "
          f"re-published {republished:.0f}, {result.duplicates} duplicates on the new log; consumer skipped "
          f"{consumer.duplicates():.0f} duplicates")


# -- two relays, and a relay that restarts -------------------------------------------------------------------------

async def test_two_relays_declare_one_loss_and_republish_their_own_lease_partitions_in_order(
        make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = make_database("hiring")
    bootstrap = broker.bootstrap_servers
    topic = TopicSpec(unique("loss-two"), 4)
    await make_topics(bootstrap, topic)
    keys = [str(uuid.uuid4()) for _ in range(60)]
    expected: dict[str, list[str]] = defaultdict(list)

    async with running_relay(url, bootstrap, topic, LOSS_TWO, instance_id="relay-a") as a, \
            running_relay(url, bootstrap, topic, LOSS_TWO, instance_id="relay-b") as b:
        async def split() -> bool:
            return bool(a.leases.owned) and bool(b.leases.owned) and len(a.leases.owned | b.leases.owned) == 16

        await eventually(split, timeout=15, what="both relays own lease partitions")
        await _backlog(url, schemas, topic.name, keys=keys, count=2000, expected=expected)
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog published")
        assert a.published_total > 0 and b.published_total > 0, "one relay did all the work"
        back = restart_empty(broker)
        await _backlog(url, schemas, topic.name, keys=keys, count=300, expected=expected)
        await eventually(lambda: _on_topic(bootstrap, topic.name, 2300), timeout=30,
                         what="every event on the broker again")
        republished_in = time.monotonic() - back
        await eventually(lambda: _all_published(url), timeout=10, what="all rows marked published")
        records = await read_all(bootstrap, topic.name)
        losses = [_sample(r, "outbox_broker_losses_total") for r in (a, b)]
        republished = [_sample(r, "outbox_republished_total") for r in (a, b)]

    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == 2300
    assert sum(losses) == 1, f"the loss was declared {losses} times (a, b)"
    assert sum(republished) == 2000 and all(republished), f"re-published by a, b: {republished}"
    rows = await _rows(url, "SELECT republished FROM outbox_broker_losses")
    assert [r[0] for r in rows] == [2000]
    print(f"\ntwo relays: broker back -> all {result.distinct} events on it again in {republished_in:.2f}s; "
          f"re-published {republished} (a, b), loss declared by {'a' if losses[0] else 'b'}; "
          f"{result.duplicates} duplicates on the new log")


async def test_a_relay_started_after_the_broker_lost_its_log_republishes_from_what_the_database_recorded(
        make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    """The broker restarts while the relay is down (a stack restart); nothing new is written: the relay knows
    what the broker had confirmed only from `outbox_broker_offsets`."""
    url = make_database("hiring")
    bootstrap = broker.bootstrap_servers
    topic = TopicSpec(unique("loss-restart"), 2)
    await make_topics(bootstrap, topic)
    keys = [str(uuid.uuid4()) for _ in range(10)]
    expected: dict[str, list[str]] = defaultdict(list)
    await _backlog(url, schemas, topic.name, keys=keys, count=500, expected=expected)
    async with running_relay(url, bootstrap, topic, LOSS_FAST, instance_id="before"):
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog published")
    offsets = await _rows(url, "SELECT partition, high_offset FROM outbox_broker_offsets WHERE topic = $1", topic.name)
    assert sorted(r[0] for r in offsets) == [0, 1] and all(r[1] >= 0 for r in offsets), offsets

    back = restart_empty(broker)
    async with running_relay(url, bootstrap, topic, LOSS_FAST, instance_id="after") as relay:
        await eventually(lambda: _on_topic(bootstrap, topic.name, 500), timeout=30,
                         what="every event on the broker again")
        republished_in = time.monotonic() - back
        await eventually(lambda: _all_published(url), timeout=10, what="all rows marked published")
        assert _sample(relay, "outbox_broker_losses_total") == 1
        assert _sample(relay, "outbox_republished_total") == 500
    check_topic(await read_all(bootstrap, topic.name), expected, topic.partitions)
    print(f"\nrelay restarted: all 500 events on the broker again {republished_in:.2f}s after it came back")


async def test_a_relay_whose_breaker_opened_while_the_broker_was_away_recovers_every_time(
        make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    """The broker stays away long enough for the relay's breaker to open, then comes back empty, twice: the loss is
    declared while the breaker is half-open and the round that declares it sends nothing, so the breaker's one
    trial must be handed back or the relay never publishes again (found by `make chaos`: the second broker kill)."""
    url = make_database("hiring")
    bootstrap = broker.bootstrap_servers
    topic = TopicSpec(unique("loss-breaker"), 2)
    await make_topics(bootstrap, topic)
    keys = [str(uuid.uuid4()) for _ in range(10)]
    expected: dict[str, list[str]] = defaultdict(list)
    await _backlog(url, schemas, topic.name, keys=keys, count=200, expected=expected)
    async with running_relay(url, bootstrap, topic, LOSS_TWO) as relay:
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog published")
        for outage in (1, 2):
            broker.stop()
            await _backlog(url, schemas, topic.name, keys=keys, count=100, expected=expected)

            async def opened() -> bool:
                return relay.breaker.opened_total >= outage  # noqa: B023

            await eventually(opened, timeout=20, what=f"outage {outage}: the relay's breaker opened")
            broker.start()
            total = sum(len(v) for v in expected.values())
            await eventually(lambda: _on_topic(bootstrap, topic.name, total), timeout=30,  # noqa: B023
                             what=f"outage {outage}: every event on the broker again")
            await eventually(lambda: _all_published(url), timeout=10, what=f"outage {outage}: all rows marked")
            assert _sample(relay, "outbox_broker_losses_total") == outage
    check_topic(await read_all(bootstrap, topic.name), expected, topic.partitions)


# -- dead letters ----------------------------------------------------------------------------------------------------

async def test_dead_letters_written_before_the_loss_are_listed_and_replayed_from_the_database(
        make_database: Callable[..., str], broker: TansuBroker, schemas: SchemaClient, unique: Callable[[str], str],
        pg_server: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    url = make_database("bonus", *BONUS_EVENTS_STAGE, "backbone_1_dlq_records")
    bootstrap = broker.bootstrap_servers
    group, topic = unique("bonus"), unique("managers")
    specs = [TopicSpec(name, 4) for name in (topic, dlq_topic(group, topic), parking_topic(group, topic))]
    await make_topics(bootstrap, *specs)
    monkeypatch.setenv(f"{group.upper()}_DATABASE_URL", url)
    first, second = (manager(uuid.uuid4(), version=2, topic=topic, partition=p) for p in (1, 2))
    before_fix = BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas,
                                handlers=await bonus_handlers(url, manager_created_versions=[0, 1]),
                                dlq=DeadLetterWriter(bootstrap, group), config=ProcessorConfig(backoff_cap=0.2))
    try:
        await before_fix.process([first, second])  # v2 is not accepted yet: both dead-lettered
    finally:
        await before_fix.close()
    on_broker = await read_records(bootstrap, [dlq_topic(group, topic)])
    kept = await _rows(url, "SELECT dlq_topic, dlq_partition, dlq_offset, event_id FROM dlq_records ORDER BY id")
    assert [(r.topic, r.partition, r.offset, r.event_id) for r in on_broker] == [tuple(r) for r in kept]
    event_ids = [dict(m.headers)["event_id"].decode() for m in (first, second)]
    done = await replay(bootstrap, url, ReplayOptions(group=group, operator="test",
                                                      filters=Filters(event_ids=frozenset(event_ids[:1]))), out=None)
    assert done.replayed == 1  # the first one is replayed before the loss (it fails again: v2 still refused)

    restart_empty(broker)
    assert await dlq_topics(bootstrap, group) == []
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["--bootstrap", bootstrap, "--database-url", pg_server.url, "list",
                                          "--group", group, "--records"]) == 0
    listed = capsys.readouterr().out
    print(f"\n{listed}")
    assert f"note: {dlq_topic(group, topic)}: 2 record(s) read from the group's database" in listed, listed
    assert "2 dead-lettered record(s): 1 pending, 1 replayed" in listed, listed
    lines = {e: line for e in event_ids for line in listed.splitlines() if e in line and "@db" in line}
    assert "replayed" in lines[event_ids[0]] and "pending" in lines[event_ids[1]], listed

    await make_topics(bootstrap, *specs)  # what the relay and the worker declare when they come back
    again = await replay(bootstrap, url, ReplayOptions(group=group, operator="test"), out=None)
    assert (again.replayed, again.skipped, again.result) == (1, 1, "ok")
    assert again.notes and "read from the group's database" in again.notes[0]
    [back] = await read_all(bootstrap, topic)
    assert (back.partition, back.key, back.value) == (2, second.key, second.value)  # home, same event and id
    assert dict(back.headers)["dlq.replay.count"] == b"1"
    fixed = BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas, handlers=await bonus_handlers(url),
                           dlq=DeadLetterWriter(bootstrap, group), config=ProcessorConfig(backoff_cap=0.2))
    try:
        await fixed.process([back])
    finally:
        await fixed.close()
    managers = await _rows(url, "SELECT id FROM managers")
    assert [str(r[0]) for r in managers] == [json.loads(second.value or b"")["payload"]["manager_id"]]


# -- a real worker ---------------------------------------------------------------------------------------------------

async def _worker_metric(w: Workers, name: str) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{w.ports['w1']}/metrics")).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)


async def _applied_once(w: Workers, ids: list[str]) -> bool:
    w.alive()
    counts = collections.Counter(r["event_id"] for r in await w.effects())
    return set(counts) == set(ids) and all(n == 1 for n in counts.values())


async def test_a_running_worker_reads_the_lost_log_again_and_applies_each_event_once(
        make_database: Callable[[str], str], broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str], pg_server: EmbeddedPostgres, tmp_path: Path) -> None:
    """The relay and a Faust worker (a process) run on; the topic is deleted and declared again under them (the
    group survives: the worker would keep fetching beyond the new log's end), then the broker restarts empty
    (the group is gone too). Each time the relay publishes the window again and the worker applies each event
    exactly once, skipping what it had applied."""
    url = make_database("hiring")
    bootstrap = broker.bootstrap_servers
    group, topic = unique("loss-worker"), TopicSpec(unique("loss-worker"), 2)
    await make_topics(bootstrap, topic, TopicSpec(dlq_topic(group, topic.name), 2))
    w = Workers(tmp_path / group, bootstrap, _bonus_database(pg_server.url), group, [topic])
    await _rows(w.database_url, EFFECTS)
    keys = [str(uuid.uuid4()) for _ in range(20)]
    expected: dict[str, list[str]] = defaultdict(list)
    w.start("w1")
    try:
        async with running_relay(url, bootstrap, topic, LOSS_FAST) as relay:
            ids = await _backlog(url, schemas, topic.name, keys=keys, count=200, expected=expected)
            await eventually(lambda: _applied_once(w, ids), timeout=60, what="200 events applied once")

            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                await admin.delete_topics([topic.name])
            finally:
                await admin.close()
            recreated = time.monotonic()
            await eventually(lambda: _declared(bootstrap, topic), timeout=10, what="the topic declared again")
            # new events only once the relay noticed: one published before would precede the window on the new
            # log (the relay's connection did not break, so it notices at its next check, LOSS_FAST: 0.3 s)
            await eventually(_relay_counted(relay, "outbox_broker_losses_total", 1), timeout=10,
                             what="the relay noticed the recreated topic")
            ids += await _backlog(url, schemas, topic.name, keys=keys, count=50, expected=expected)
            await eventually(lambda: _applied_once(w, ids), timeout=30, what="250 events applied once")
            await eventually(_worker_counted(w, "consumer_duplicates_total", 200), timeout=30,
                             what="the 200 events applied before skipped as duplicates")
            after_recreate = time.monotonic() - recreated
            assert await _worker_metric(w, "consumer_log_resets_total") >= 1

            back = restart_empty(broker)
            ids += await _backlog(url, schemas, topic.name, keys=keys, count=50, expected=expected)
            await eventually(lambda: _applied_once(w, ids), timeout=30, what="300 events applied once")
            await eventually(_worker_counted(w, "consumer_duplicates_total", 200 + 250), timeout=30,
                             what="the 250 events applied before skipped as duplicates")
            after_restart = time.monotonic() - back
            duplicates = await _worker_metric(w, "consumer_duplicates_total")
            assert _sample(relay, "outbox_broker_losses_total") == 2
            assert _sample(relay, "outbox_republished_total") == 200 + 250
        check_topic(await read_all(bootstrap, topic.name), expected, topic.partitions)
    except BaseException:
        print(w.logs())
        raise
    finally:
        w.supervisor.stop_all()
    print(f"\nworker: topic recreated -> 250 applied once {after_recreate:.1f}s later; broker restarted -> 300 "
          f"applied once {after_restart:.1f}s later; {duplicates:.0f} duplicates skipped")


def _relay_counted(relay: Relay, name: str, at_least: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return _sample(relay, name) >= at_least
    return check


def _worker_counted(w: Workers, name: str, at_least: float) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        w.alive()
        return await _worker_metric(w, name) >= at_least
    return check


async def _declared(bootstrap: str, topic: TopicSpec) -> bool:
    try:
        await make_topics(bootstrap, topic)
        return True
    except Exception:  # the broker forgets a deleted topic asynchronously
        return False
