"""The private internals of faust-streaming, mode-streaming and aiokafka that the backbone relies on, checked
on the real broker with a real Faust worker: an upgrade that changes one of them fails here, by name.

- eventbus/consumer/transport.py: `_ConsumerThread._create_worker_consumer` sets the aiokafka consumer's
  `_fetch_max_wait_ms` (Faust hard-codes 1500 ms); `EagerFirstWait.wait_first` runs the fetch loop's hand-off
  eagerly (it must still be called, and still take its eager path).
- eventbus/consumer/worker.py `take_batches`: reads the agent's channel queue directly and does what iterating
  the stream does (generation ids, flow control, `message.tracked` / `consumer.track_message`): a batch's
  offsets are committed only after its transaction, and a rebalance lets an in-flight batch finish.
- eventbus/topics.py `partitions_of`: `consumer._client.force_metadata_update()`.
- eventbus/outbox/publisher.py: `producer.create_batch()` / `send_batch()`, and `producer._sender` to close a
  producer stuck on a hung broker.

The worker under test is this module run as a process (`python -m tests.integration.test_private_hooks
TOPIC:PARTITIONS...`, group and settings from the environment): `eventbus.consumer.worker.build_app` and
`run_worker` around a BatchProcessor whose one handler records every event it applies with the applying
process's pid, and holds the batch inside its transaction while a file `hold.<topic>` exists in $HOOKS_GATE
(after writing `held.<topic>`: the batch's events). Its page /hooks shows the internals the tests inspect.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib.metadata
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from eventbus.consumer.messages import Decoded
from eventbus.db import plain_url
from eventbus.envelope import encode, kafka_headers, new_envelope
from eventbus.migrate import upgrade
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.stack.supervisor import ProcessSpec, Supervisor
from eventbus.topics import TopicSpec, partitions_of
from tests.integration.conftest import make_topics, read_topic
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.integration

FETCH_WAIT_MS = 37  # neither Faust's 1500, aiokafka's 500 nor our default 50: only the injection sets it
MODULE = "tests.integration.test_private_hooks"


def upgrade_note(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


# -- the private names, one by one: a clear message before any behaviour is tried ------------------------------
def _faust_message() -> Any:
    from faust.types.tuples import Message

    return Message("t", 0, 0, 0.0, 0, [], b"k", b"v", None)


def _names() -> list[tuple[str, str, str, Callable[[], object]]]:
    from faust import App
    from faust.channels import Channel
    from faust.transport.consumer import Consumer as FaustConsumer
    from faust.transport.drivers import aiokafka as driver
    from mode import Service
    from mode.services import WaitResults

    faust, mode = "faust-streaming", "mode-streaming"
    return [
        ("create_worker_consumer", faust, "AIOKafkaConsumerThread._create_worker_consumer "
         "(transport._ConsumerThread overrides it to set the fetch wait)",
         lambda: driver.AIOKafkaConsumerThread._create_worker_consumer),
        ("new_consumer_thread", faust, "the aiokafka driver's Consumer._new_consumer_thread "
         "(transport._Consumer overrides it)", lambda: driver.Consumer._new_consumer_thread),
        ("transport_consumer", faust, "the aiokafka driver's Transport.Consumer (transport._Transport replaces it)",
         lambda: driver.Transport.Consumer),
        ("new_transport", faust, "App._new_transport (transport.BackboneApp overrides it)",
         lambda: App._new_transport),
        ("wait_first", mode, "Service.wait_first (transport.EagerFirstWait overrides it)",
         lambda: Service.wait_first),
        ("wait_results", mode, "WaitResults(done, results, stopped) (EagerFirstWait builds one)",
         lambda: WaitResults([], [], False).stopped),
        ("channel_queue", faust, "Channel.queue (take_batches reads the agent's queue directly)",
         lambda: Channel.queue),
        ("on_stop_iteration", faust, "Channel.on_stop_iteration (take_batches unsubscribes with it)",
         lambda: Channel.on_stop_iteration),
        ("track_message", faust, "Consumer.track_message (take_batches tracks each event it takes)",
         lambda: FaustConsumer.track_message),
        ("message_tracked", faust, "Message.tracked (take_batches tracks an event once)",
         lambda: _faust_message().tracked),
        ("message_generation_id", faust, "Message.generation_id (take_batches skips events of an older "
         "generation)", lambda: _faust_message().generation_id),
        ("app_generation_id", faust, "App.consumer_generation_id (take_batches compares generations)",
         lambda: App.consumer_generation_id),
    ]


@pytest.mark.parametrize(("package", "what", "get"), [pytest.param(*rest, id=name) for name, *rest in _names()])
def test_the_private_names_the_backbone_uses_still_exist(package: str, what: str, get: Callable[[], object]) -> None:
    try:
        get()
    except AttributeError as exc:
        pytest.fail(f"{upgrade_note(package)} no longer has {what}: {exc}")


async def test_partitions_of_refreshes_metadata_through_the_consumers_private_client(
        bootstrap: str, unique: Callable[[str], str]) -> None:
    """eventbus.topics.partitions_of: a consumer started before the topic existed learns it through
    `consumer._client.force_metadata_update()`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, metadata_max_age_ms=600_000)
    await consumer.start()
    try:
        client = getattr(consumer, "_client", None)
        assert client is not None, f"{upgrade_note('aiokafka')}: AIOKafkaConsumer has no _client (topics.py uses it)"
        assert callable(getattr(client, "force_metadata_update", None)), (
            f"{upgrade_note('aiokafka')}: AIOKafkaClient.force_metadata_update is gone (eventbus/topics.py)")
        topic = unique("hooks-metadata")
        await make_topics(bootstrap, TopicSpec(topic, 3))
        assert await partitions_of(consumer, topic) == {0, 1, 2}
    finally:
        await consumer.stop()


async def test_publisher_sends_record_batches_and_can_reach_the_producers_sender(
        bootstrap: str, unique: Callable[[str], str]) -> None:
    """eventbus.outbox.publisher: create_batch / send_batch send a confirmed batch; `_sender.close()` is
    what `KafkaPublisher._abandon` closes a producer stuck on a hung broker with."""
    topic = unique("hooks-publisher")
    await make_topics(bootstrap, TopicSpec(topic, 1))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        sender = getattr(producer, "_sender", None)
        assert sender is not None and callable(getattr(sender, "close", None)), (
            f"{upgrade_note('aiokafka')}: AIOKafkaProducer._sender.close() is gone (KafkaPublisher._abandon)")
        batch = producer.create_batch()
        for i in range(3):
            assert batch.append(key=b"k", value=b"v%d" % i, timestamp=None, headers=[]) is not None
        batch.close()
        metadata = await asyncio.wait_for(await producer.send_batch(batch, topic, partition=0), 10)
        assert metadata.offset == 0
    finally:
        await producer.stop()
    assert [r.value for r in await read_topic(bootstrap, topic, 3)] == [b"v0", b"v1", b"v2"]


# -- the worker as a process --------------------------------------------------------------------------------------
def _event(task_id: uuid.UUID) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    envelope = new_envelope("TaskCompleted", 0, {"task_id": str(task_id), "creator_id": str(uuid.uuid4()),
                                                 "candidate_id": str(uuid.uuid4())}, producer="hooks-test")
    return str(task_id).encode(), encode(envelope), kafka_headers(envelope["meta"])


async def _produce(bootstrap: str, topic: str, count: int) -> list[str]:
    """`count` TaskCompleted events on random keys; their event ids."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    ids = []
    try:
        for _ in range(count):
            key, value, headers = _event(uuid.uuid4())
            await producer.send(topic, key=key, value=value, headers=headers)
            ids.append(dict(headers)["event_id"].decode())
        await producer.flush()
    finally:
        await producer.stop()
    return ids


EFFECTS = """CREATE TABLE hook_effects (event_id uuid NOT NULL, topic text NOT NULL, part int NOT NULL,
                                      msg_offset bigint NOT NULL, pid int NOT NULL)"""


class Workers:
    """Workers of one consumer group, each a process of this module, with a database and a gate folder."""

    def __init__(self, tmp: Path, bootstrap: str, database_url: str, group: str, sources: list[TopicSpec]) -> None:
        self.gate = tmp / "gate"
        self.gate.mkdir(parents=True)
        self.database_url = plain_url(database_url)
        self.group = group
        self.sources = sources
        self.supervisor = Supervisor(tmp / "logs", {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "HOOKS_DATABASE_URL": database_url, "HOOKS_GROUP": group,
            "HOOKS_GATE": str(self.gate), "REGISTRY_URL": "", "LOG_LEVEL": "WARNING",
            "CONSUMER_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS), "CONSUMER_COMMIT_INTERVAL": "0.2",
            "CONSUMER_SESSION_TIMEOUT": "4", "CONSUMER_HEARTBEAT_INTERVAL": "0.5",
            "CONSUMER_REBALANCE_TIMEOUT": "8", "CONSUMER_BATCH_WITHIN": "0.05"})
        self.tmp = tmp
        self.ports: dict[str, int] = {}
        self.killed: set[str] = set()

    def start(self, name: str) -> int:
        port = free_port()
        self.ports[name] = port
        argv = [sys.executable, "-m", MODULE, *(f"{s.name}:{s.partitions}" for s in self.sources)]
        process = self.supervisor.start(ProcessSpec(name, argv, port, {
            "WORKER_PORT": str(port), "CONSUMER_DATA_DIR": str(self.tmp / f"faust-{name}")}))
        return process.pid

    async def hooks(self, name: str) -> dict[str, Any]:
        self.alive(name)
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://127.0.0.1:{self.ports[name]}/hooks")
        except httpx.HTTPError as exc:
            raise AssertionError(f"{name} does not answer /hooks yet: {exc!r}") from None
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    def alive(self, *names: str) -> None:
        """Fail at once (not at a deadline) when a worker this test did not kill has exited."""
        for name in names or [n for n in self.supervisor.processes if n not in self.killed]:
            if name in self.supervisor.exited():
                raise RuntimeError(f"worker {name} exited; its log:\n{self.supervisor.log_tail(name, 60)}")

    def kill(self, name: str) -> None:
        self.killed.add(name)
        self.supervisor.signal(name, signal.SIGKILL)
        self.supervisor.stop(name)

    def hold(self, topic: str) -> None:
        (self.gate / f"hold.{topic}").touch()

    def release(self, topic: str) -> None:
        (self.gate / f"hold.{topic}").unlink()

    def held(self, topic: str) -> dict[str, Any] | None:
        path = self.gate / f"held.{topic}"
        return json.loads(path.read_text()) if path.exists() else None

    async def effects(self, topic: str | None = None) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.database_url)
        try:
            return list(await conn.fetch("SELECT event_id::text AS event_id, topic, part, msg_offset, pid "
                                         "FROM hook_effects WHERE $1::text IS NULL OR topic = $1", topic))
        finally:
            await conn.close()

    def logs(self) -> str:
        return "\n".join(f"--- {n}:\n{self.supervisor.log_tail(n, 40)}" for n in self.supervisor.specs)


def _bonus_database(server_url: str) -> str:
    """A bonus database with every branch of its tree applied (the worker needs its `processed_events`)."""
    name = f"t_hooks_{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(1) as pool:  # Alembic's env runs its own event loop: keep it off the test's loop
        return pool.submit(upgrade, "bonus", server_url, "heads", database=name).result()


@pytest.fixture
def workers(tmp_path: Path, bootstrap: str, pg_server: EmbeddedPostgres) -> Iterator[Callable[..., Workers]]:
    made: list[Workers] = []

    def make(group: str, sources: list[TopicSpec]) -> Workers:
        made.append(Workers(tmp_path / group, bootstrap, _bonus_database(pg_server.url), group, sources))
        return made[-1]

    yield make
    for w in made:
        w.supervisor.stop_all()


async def _setup(workers: Callable[..., Workers], bootstrap: str, unique: Callable[[str], str],
                 partitions: dict[str, int]) -> tuple[Workers, list[TopicSpec]]:
    from eventbus.consumer.dlq import dlq_topic

    group = unique("hooks")
    sources = [TopicSpec(unique(f"hooks-{label}"), n) for label, n in partitions.items()]
    await make_topics(bootstrap, *sources, *(TopicSpec(dlq_topic(group, s.name), s.partitions) for s in sources))
    w = workers(group, sources)
    conn = await asyncpg.connect(w.database_url)
    try:
        await conn.execute(EFFECTS)
    finally:
        await conn.close()
    return w, sources


def _once_each(effects: list[asyncpg.Record], ids: list[str]) -> None:
    counts = collections.Counter(r["event_id"] for r in effects)
    missing = [e for e in ids if counts[e] == 0]
    doubled = {e: n for e, n in counts.items() if n > 1}
    assert not missing and not doubled and set(counts) == set(ids), (
        f"{len(missing)} of {len(ids)} events never applied, {len(doubled)} applied more than once, "
        f"{len(set(counts) - set(ids))} unknown")


async def _committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(tp)
        return offset
    finally:
        await consumer.stop()


# -- (a) the fetch wait and the eager hand-off ---------------------------------------------------------------------
async def test_the_workers_aiokafka_consumer_uses_the_configured_fetch_wait_and_the_eager_hand_off(
        workers: Callable[..., Workers], bootstrap: str, unique: Callable[[str], str]) -> None:
    w, (source,) = await _setup(workers, bootstrap, unique, {"a": 2})
    w.start("w1")
    ids = await _produce(bootstrap, source.name, 30)
    try:
        await eventually(lambda: _count(w, len(ids)), timeout=60, interval=0.1, what="all 30 events applied")
        state = await eventually(lambda: w.hooks("w1"), timeout=10, what="/hooks")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{w.logs()}") from None
    faust, aiokafka = upgrade_note("faust-streaming"), upgrade_note("aiokafka")
    assert state["consumer_thread"], f"{faust}: the Faust consumer has no _thread (transport._ConsumerThread)"
    assert state["aiokafka_consumer"], f"{faust}: AIOKafkaConsumerThread has no _consumer"
    assert state["consumer_fetch_max_wait_ms"] == FETCH_WAIT_MS, (
        f"the worker's aiokafka consumer has _fetch_max_wait_ms={state['consumer_fetch_max_wait_ms']}, not the "
        f"configured {FETCH_WAIT_MS}: {faust} or {aiokafka} changed how the consumer is built "
        "(eventbus/consumer/transport.py _ConsumerThread._create_worker_consumer)")
    assert state["fetcher_fetch_max_wait_ms"] == FETCH_WAIT_MS, (
        f"the aiokafka Fetcher waits {state['fetcher_fetch_max_wait_ms']} ms, not {FETCH_WAIT_MS}: {aiokafka} no "
        "longer takes the consumer's _fetch_max_wait_ms at start() (the injection in transport.py is too late)")
    assert state["wait_first_is_eager"], (
        f"the worker's consumer ({state['consumer_class']}) does not resolve wait_first to EagerFirstWait's")
    assert state["wait_first_calls"] >= len(ids), (
        f"Faust's fetch loop called Consumer.wait_first {state['wait_first_calls']} times for {len(ids)} messages: "
        f"{faust} hands messages over another way (EagerFirstWait.wait_first is dead code)")
    assert state["wait_first_eager"] > 0, (
        f"EagerFirstWait.wait_first never completed eagerly in {state['wait_first_calls']} calls: {faust} no "
        "longer passes a coroutine that finishes without suspending")


async def _count(w: Workers, expected: int, topic: str | None = None) -> bool:
    w.alive()
    return len(await w.effects(topic)) >= expected


# -- (b) offsets only after the effect -----------------------------------------------------------------------------
async def test_a_batch_blocked_in_its_transaction_keeps_its_offsets_uncommitted_and_is_redelivered_after_a_kill(
        workers: Callable[..., Workers], bootstrap: str, unique: Callable[[str], str]) -> None:
    """Topic `held`'s batch blocks inside its transaction; topic `flowing`, in the same worker, keeps
    committing, so each commit round is seen. `held`'s committed offset must stay at or before the batch;
    after SIGKILL a new worker gets the batch again and applies it once."""
    w, (held, flowing) = await _setup(workers, bootstrap, unique, {"held": 1, "flowing": 1})
    w.hold(held.name)
    w.start("w1")
    held_ids = await _produce(bootstrap, held.name, 10)
    try:
        batch = await eventually(lambda: _held(w, held.name, "w1"), timeout=60, interval=0.05,
                                 what="w1 to hold a batch inside its transaction")
        assert batch is not None
        first = min(e["offset"] for e in batch["events"])
        flowing_ids: list[str] = []
        for _ in range(2):  # two commit rounds after the batch was taken
            flowing_ids += await _produce(bootstrap, flowing.name, 5)
            done = len(flowing_ids)
            await eventually(functools.partial(_committed_is, bootstrap, w.group, flowing.name, done), timeout=30,
                             interval=0.1, what=f"the flowing topic's offset committed at {done}")
            committed = await _committed(bootstrap, w.group, TopicPartition(held.name, 0))
            assert committed is None or committed <= first, (
                f"offset {committed} committed for {held.name} while its batch from offset {first} is still inside "
                "its transaction: offsets no longer wait for the batch's effect (eventbus/consumer/worker.py: the "
                f"agent acks after process(), take_batches; {upgrade_note('faust-streaming')})")
        assert not await w.effects(held.name), "the held batch's effects are visible before its transaction ended"
        w.kill("w1")
        w.release(held.name)
        w.start("w2")
        await eventually(lambda: _count(w, len(held_ids), held.name), timeout=60, interval=0.1,
                         what="w2 to apply the batch w1 never committed")
        await eventually(lambda: _committed_is(bootstrap, w.group, held.name, len(held_ids)), timeout=30,
                         interval=0.1, what="the held topic's offsets committed after its effects")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{w.logs()}") from None
    effects = await w.effects()
    _once_each(effects, held_ids + flowing_ids)
    held_by = {r["pid"] for r in effects if r["event_id"] in {e["event_id"] for e in batch["events"]}}
    assert held_by == {w.supervisor.processes["w2"].pid}, "the held batch was not applied by the second worker"


async def _held(w: Workers, topic: str, name: str) -> dict[str, Any] | None:
    w.alive(name)
    return w.held(topic)


async def _committed_is(bootstrap: str, group: str, topic: str, offset: int) -> bool:
    return await _committed(bootstrap, group, TopicPartition(topic, 0)) == offset


# -- (c) a rebalance with a batch in flight ------------------------------------------------------------------------
async def test_a_worker_joining_while_a_batch_is_in_flight_loses_nothing_and_doubles_nothing(
        workers: Callable[..., Workers], bootstrap: str, unique: Callable[[str], str]) -> None:
    """w1 holds a batch inside its transaction; w2 joins the group; once w1 is rebalancing the batch is
    released. The rebalance lets it finish and commit (w1 applied it, w2 never sees it again) and every
    event, before and after, is applied exactly once."""
    w, (source,) = await _setup(workers, bootstrap, unique, {"c": 4})
    w.hold(source.name)
    w.start("w1")
    ids = await _produce(bootstrap, source.name, 40)
    try:
        batch = await eventually(lambda: _held(w, source.name, "w1"), timeout=60, interval=0.05,
                                 what="w1 to hold a batch inside its transaction")
        assert batch is not None
        w.start("w2")
        size = len(batch["events"])
        await eventually(lambda: _waiting_for(w, "w1", size), timeout=30, interval=0.02,
                         what=f"w1's rebalance (w2 joined) to wait for the {size} unacked events of its batch in "
                              "flight (take_batches: message.tracked / consumer.track_message; Faust's wait_empty; "
                              f"{upgrade_note('faust-streaming')})")
        w.release(source.name)
        await eventually(lambda: _assigned(w, "w2"), timeout=60, interval=0.1, what="w2 to get partitions")
        ids += await _produce(bootstrap, source.name, 40)
        await eventually(lambda: _count(w, len(ids)), timeout=60, interval=0.1, what="every event applied")
        state1, state2 = await w.hooks("w1"), await w.hooks("w2")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{w.logs()}") from None
    effects = await w.effects()
    _once_each(effects, ids)
    pids = {name: w.supervisor.processes[name].pid for name in ("w1", "w2")}
    in_flight = {e["event_id"] for e in batch["events"]}
    assert {r["pid"] for r in effects if r["event_id"] in in_flight} == {pids["w1"]}, (
        "the in-flight batch was not finished by w1: the rebalance cancelled or lost it")
    assert state1["assignment"] and state2["assignment"], "the group did not end up with two members"
    assert state2["duplicates"] == 0, (
        f"w2 was redelivered {state2['duplicates']:.0f} events w1 had applied: the rebalance did not wait for the "
        "in-flight batch's ack and commit (take_batches: consumer.track_message / message.tracked; "
        f"{upgrade_note('faust-streaming')})")
    assert any(r["pid"] == pids["w2"] for r in effects), "w2 applied nothing after it joined"


async def _waiting_for(w: Workers, name: str, events: int) -> dict[str, Any]:
    state = await w.hooks(name)
    assert state["unacked"] is not None, (
        f"{upgrade_note('faust-streaming')}: the consumer has no _unacked_messages (this test's probe)")
    rebalancing, waiting, unacked = state["rebalancing"], state["waiting_for_acks"], state["unacked"]
    assert rebalancing and waiting and unacked >= events, f"{rebalancing=}, {waiting=}, {unacked=}"
    return state


async def _assigned(w: Workers, name: str) -> bool:
    return bool((await w.hooks(name))["assignment"])


# -- the worker process ----------------------------------------------------------------------------------------------
COUNTS: collections.Counter[str] = collections.Counter()


def _instrument() -> Callable[..., Any]:
    """Count EagerFirstWait.wait_first calls and those that fell back to mode's (not eager); note when the
    consumer is inside Faust's `wait_empty` (a rebalance waiting for unacked messages). Behaviour unchanged."""
    from faust.transport.consumer import Consumer as FaustConsumer
    from mode import Service

    from eventbus.consumer.transport import EagerFirstWait

    eager_wait_first, mode_wait_first = EagerFirstWait.wait_first, Service.wait_first

    async def counted(self: Any, *coros: Any, timeout: Any = None) -> Any:
        COUNTS["wait_first"] += 1
        return await eager_wait_first(self, *coros, timeout=timeout)

    async def fallback(self: Any, *coros: Any, timeout: Any = None) -> Any:
        if isinstance(self, EagerFirstWait):
            COUNTS["fallback"] += 1
        return await mode_wait_first(self, *coros, timeout=timeout)

    faust_wait_empty = FaustConsumer.wait_empty

    async def wait_empty(self: Any) -> None:
        COUNTS["in_wait_empty"] += 1
        try:
            await faust_wait_empty(self)
        finally:
            COUNTS["in_wait_empty"] -= 1

    EagerFirstWait.wait_first = counted  # type: ignore[method-assign]
    Service.wait_first = fallback  # type: ignore[method-assign]
    FaustConsumer.wait_empty = wait_empty  # type: ignore[method-assign]
    return counted


def _state(app: Any, processor: Any, counted: Callable[..., Any]) -> dict[str, Any]:
    thread = getattr(app.consumer, "_thread", None)
    kafka = getattr(thread, "_consumer", None)
    fetcher = getattr(kafka, "_fetcher", None)
    unacked = getattr(app.consumer, "_unacked_messages", None)
    duplicates = sum(s.value for family in processor.metrics.registry.collect() for s in family.samples
                     if s.name == "consumer_duplicates_total")
    return {
        "pid": os.getpid(),
        "consumer_class": type(app.consumer).__name__,
        "consumer_thread": thread is not None,
        "aiokafka_consumer": kafka is not None,
        "consumer_fetch_max_wait_ms": getattr(kafka, "_fetch_max_wait_ms", None),
        "fetcher_fetch_max_wait_ms": getattr(fetcher, "_fetch_max_wait_ms", None),
        "wait_first_is_eager": type(app.consumer).wait_first is counted,
        "wait_first_calls": COUNTS["wait_first"],
        "wait_first_eager": COUNTS["wait_first"] - COUNTS["fallback"],
        "rebalancing": bool(app.rebalancing),
        "waiting_for_acks": COUNTS["in_wait_empty"] > 0,
        "unacked": None if unacked is None else len(unacked),
        "assignment": sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()),
        "duplicates": duplicates,
    }


def worker_main(sources: list[TopicSpec]) -> None:
    from faust import web

    from eventbus.consumer import worker
    from eventbus.consumer.dlq import DeadLetterWriter
    from eventbus.consumer.processor import BatchProcessor, Handler
    from eventbus.consumer.worker import WorkerSettings
    from eventbus.logs import setup_logging
    from eventbus.schemas.client import SchemaClient

    counted = _instrument()
    settings = WorkerSettings()
    group, gate = os.environ["HOOKS_GROUP"], Path(os.environ["HOOKS_GATE"])
    setup_logging(settings.log_level, f"{group}-worker")

    async def apply(conn: asyncpg.Connection, items: list[Decoded]) -> None:
        await conn.executemany(
            "INSERT INTO hook_effects (event_id, topic, part, msg_offset, pid) VALUES ($1, $2, $3, $4, $5)",
            [(i.event_id, i.raw.topic, i.raw.partition, i.raw.offset, os.getpid()) for i in items])
        topic = items[0].raw.topic
        hold = gate / f"hold.{topic}"
        if hold.exists():
            events = [{"event_id": str(i.event_id), "partition": i.raw.partition, "offset": i.raw.offset}
                      for i in items]
            scratch = gate / f".held.{topic}.{os.getpid()}"
            scratch.write_text(json.dumps({"pid": os.getpid(), "events": events}))
            scratch.replace(gate / f"held.{topic}")

            async def released() -> bool:
                return not hold.exists()

            await eventually(released, timeout=600, interval=0.01, what=f"{hold} removed")

    processor = BatchProcessor(group=group, dsn=plain_url(os.environ["HOOKS_DATABASE_URL"]),
                               schemas=SchemaClient(None, fallback_dir=settings.schemas_dir),
                               handlers=[Handler("TaskCompleted", frozenset({0}), apply)],
                               dlq=DeadLetterWriter(settings.kafka_bootstrap_servers, group),
                               config=settings.processor_config())

    def pages(app: Any) -> None:
        @app.page("/hooks")  # type: ignore[untyped-decorator]
        async def hooks(view: web.View, _request: web.Request) -> web.Response:
            return view.json(_state(app, processor, counted))

    asyncio.run(worker.wait_for_topics(settings, group, sources))
    app = worker.build_app(group=group, settings=settings, sources=sources, processor=processor, extra=pages)
    worker.run_worker(app, settings)


if __name__ == "__main__":
    sys.argv, specs = sys.argv[:1], sys.argv[1:]  # Faust's command line must not see the topics
    worker_main([TopicSpec(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in specs])
