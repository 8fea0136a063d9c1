"""The outbox relay under faults, against real PostgreSQL and Tansu (no mocks).

Every test ends with the same check (`check_topic`): each committed event reached the topic, and per key
the first appearances follow commit order. Duplicates are allowed (at-least-once), loss never.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text

from eventbus.db import create_engine, plain_url
from eventbus.migrate import upgrade
from eventbus.outbox.relay import Relay
from eventbus.outbox.writer import lock_key
from eventbus.resilience import BreakerState
from eventbus.schemas.client import SchemaClient
from eventbus.stack.broker import TansuBroker, port_open, tansu_binary
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.topics import TopicSpec
from tests.integration.conftest import make_topics
from tests.integration.outbox_helpers import (
    EVENT,
    FAST,
    backlog_rows,
    bulk_insert,
    check_topic,
    payload,
    published,
    read_all,
    running_relay,
    unpublished,
    write,
    writer,
)
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


# -- private servers: these tests stop them, so they must not be the session's shared ones ------------------------

@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_pg() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: a pytest session starting elsewhere resets /tmp/pytest-of-<user> to 0700,
    # and the server (running as another user when we are root) could no longer reach its folder to restart.
    base = Path(tempfile.mkdtemp(prefix="relay-faults-pg-"))
    pg = EmbeddedPostgres(base / "data", free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def _migrate(server_url: str) -> str:
    with ThreadPoolExecutor(1) as pool:  # Alembic's env runs its own event loop
        return pool.submit(upgrade, "management", server_url, database="outbox_faults").result()


async def _all_published(url: str) -> bool:
    return await unpublished(url) == 0


def _sample(relay: Relay, name: str) -> float:
    value = relay.metrics.registry.get_sample_value(name, {"service": relay.service})
    return 0.0 if value is None else value


def _keyed_backlog(keys: list[str], count: int, rng: random.Random) -> list[tuple[str, int]]:
    """`count` (key, seq) pairs on random keys; seq counts per key from 0 in list (= id = commit) order."""
    nxt: dict[str, int] = defaultdict(int)
    pairs = []
    for _ in range(count):
        key = rng.choice(keys)
        pairs.append((key, nxt[key]))
        nxt[key] += 1
    return pairs


async def _backlog(url: str, bootstrap: str, schemas: SchemaClient, topic: TopicSpec, *, keys: int,
                   count: int) -> tuple[int, dict[str, list[str]]]:
    """Declare `topic` and COPY a backlog of `count` events on `keys` random keys into the outbox; return the
    count and the event ids each key must show on the topic, in order."""
    await make_topics(bootstrap, topic)
    pairs = _keyed_backlog([str(uuid.uuid4()) for _ in range(keys)], count, random.Random())
    rows, ids = backlog_rows(writer(topic.name, schemas), pairs)
    await bulk_insert(url, rows)
    return len(rows), _expected(pairs, ids)


def _expected(pairs: list[tuple[str, int]], ids: list[str]) -> dict[str, list[str]]:
    expected: dict[str, list[str]] = defaultdict(list)
    for (key, _), event_id in zip(pairs, ids, strict=True):
        expected[key].append(event_id)
    return expected


# -- a. concurrent writers committing out of id order, two relays at once ----------------------------------------

async def test_two_relays_publish_concurrent_out_of_order_commits_completely_in_per_key_order(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    url = make_database("management")
    topic = TopicSpec(unique("faults-order"), 3)
    await make_topics(bootstrap, topic)
    engine = create_engine(url, pool_size=10)
    w = writer(topic.name, schemas)
    keys = [str(uuid.uuid4()) for _ in range(30)]
    next_seq: dict[str, int] = defaultdict(int)
    committed: dict[str, list[tuple[int, str]]] = defaultdict(list)  # key -> (seq, event_id)
    ids_in_commit_order: list[int] = []

    async def writer_task(n: int) -> None:
        for _ in range(n):
            key = rng.choice(keys)
            async with engine.begin() as conn:
                # the writer's own per-(topic, key) lock, taken first so that `seq` is drawn in commit order
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(topic.name, key)})
                seq = next_seq[key]
                next_seq[key] += 1
                envelope = await w.add(conn, EVENT, 0, payload(key, seq))
                event_id = str(envelope["meta"]["event_id"])
                row_id = (await conn.execute(text("SELECT id FROM outbox WHERE event_id = :e"),
                                             {"e": uuid.UUID(event_id)})).scalar_one()
                await asyncio.sleep(rng.uniform(0, 0.03))  # commit late, while others with higher ids commit
            committed[key].append((seq, event_id))
            ids_in_commit_order.append(row_id)

    async with running_relay(url, bootstrap, topic, instance_id="relay-a") as a, \
            running_relay(url, bootstrap, topic, instance_id="relay-b") as b:
        async def split() -> bool:
            return bool(a.leases.owned) and bool(b.leases.owned) and len(a.leases.owned | b.leases.owned) == 16

        await eventually(split, timeout=15, what="both relays own lease partitions")
        assert not a.leases.owned & b.leases.owned
        await asyncio.gather(*(writer_task(50) for _ in range(8)))
        await eventually(lambda: _all_published(url), timeout=30, what="all rows marked published")
        records = await read_all(bootstrap, topic.name)
        a_published, b_published = a.published_total, b.published_total
        assert _sample(a, "outbox_relay_errors_total") == 0 and _sample(b, "outbox_relay_errors_total") == 0
    await engine.dispose()

    inversions = sum(1 for x, y in itertools.pairwise(ids_in_commit_order) if x > y)
    assert inversions > 0, "the writers never committed out of id order; the test proves nothing"
    expected = {key: [e for _, e in sorted(pairs)] for key, pairs in committed.items()}
    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == 400, f"seed {seed}"
    assert a_published > 0 and b_published > 0, f"one relay did all the work: a {a_published}, b {b_published}"


# -- b. broker down: writes go on, breaker opens, backoff, drain in order -----------------------------------------

async def test_broker_down_writes_continue_breaker_opens_and_backlog_drains_in_order(
        make_database: Callable[[str], str], private_broker: TansuBroker, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = make_database("management")
    bootstrap = private_broker.bootstrap_servers
    topic = TopicSpec(unique("faults-broker"), 3)
    await make_topics(bootstrap, topic)
    engine = create_engine(url)
    w = writer(topic.name, schemas)
    keys = [str(uuid.uuid4()) for _ in range(6)]
    expected: dict[str, list[str]] = defaultdict(list)
    seq = 0

    async def write_some(n: int) -> float:
        nonlocal seq
        slowest = 0.0
        for _ in range(n):
            key = keys[seq % len(keys)]
            started = time.monotonic()
            expected[key].append(await write(engine, w, key, seq))
            slowest = max(slowest, time.monotonic() - started)
            seq += 1
        return slowest

    async with running_relay(url, bootstrap, topic) as relay:
        await write_some(30)
        await eventually(lambda: _all_published(url), what="the first events published")
        assert relay.breaker.state is BreakerState.CLOSED and relay.failures_total == 0

        private_broker.pause()
        paused_at = time.monotonic()
        try:
            slowest = await write_some(20)  # the API keeps accepting writes with the broker down

            async def opened() -> bool:
                await write_some(1)
                return relay.breaker.opened_total >= 1 and relay.status()["breaker"] != "closed"

            await eventually(opened, timeout=20, interval=0.1, what="the breaker to open")
            assert _sample(relay, "outbox_breaker_opened_total") >= 1
            assert _sample(relay, "outbox_breaker_state") in (BreakerState.OPEN, BreakerState.HALF_OPEN)
            # it keeps trying while open: half-open trials fail and reopen it
            opened_before = relay.breaker.opened_total

            async def retried() -> bool:
                await write_some(1)
                return relay.breaker.opened_total >= opened_before + 2

            await eventually(retried, timeout=20, interval=0.1, what="half-open trials while the broker is down")
            down_for = time.monotonic() - paused_at
            failures, times_opened, backoffs = relay.failures_total, relay.breaker.opened_total, relay.backoff.attempt
            left = await unpublished(url)
        finally:
            private_broker.resume()

        assert slowest < 2.0, f"a write took {slowest:.2f}s with the broker down"
        assert left > 0
        # every attempt went through the breaker: `threshold` failures opened it, then each failed half-open
        # trial reopened it; and each failure backed off (the backoff resets only on success)
        assert failures == FAST.breaker_threshold + times_opened - 1
        assert backoffs == failures
        # not hammering: at most the threshold's quick retries, then one trial per reset timeout
        bound = FAST.breaker_threshold + 1 + down_for / FAST.breaker_reset
        assert failures <= bound, f"{failures} failed publish rounds in {down_for:.1f}s (bound {bound:.0f})"
        assert _sample(relay, "outbox_publish_failures_total") >= failures

        await write_some(10)
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog to drain after the broker returned")
        assert relay.breaker.state is BreakerState.CLOSED
        assert _sample(relay, "outbox_breaker_state") == BreakerState.CLOSED
        assert _sample(relay, "outbox_relay_errors_total") == 0
        records = await read_all(bootstrap, topic.name)
    await engine.dispose()
    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == seq


# -- b2. the network to the broker fails: requests vanish unanswered, then connections are refused --------------

class FaultyLink:
    """A TCP proxy in front of the broker (which advertises the proxy's address, so every connection of a
    client goes through it). `forward` relays bytes; `swallow` drops them silently in both directions (a
    partition: requests in flight are lost, nothing answers); `refuse` resets every connection at once."""

    def __init__(self, upstream_port: int) -> None:
        self.port = free_port()
        self.upstream_port = upstream_port
        self.mode = "forward"
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def close(self) -> None:
        self._drop_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def swallow(self) -> None:
        self.mode = "swallow"

    def refuse(self) -> None:
        self.mode = "refuse"
        self._drop_all()

    def heal(self) -> None:
        self._drop_all()  # their streams lost bytes: the clients must reconnect
        self.mode = "forward"

    def _drop_all(self) -> None:
        for stream in list(self._writers):
            stream.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode == "refuse":
            writer.transport.abort()
            return
        ends = [writer]
        self._writers.add(writer)
        if self.mode == "forward":
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                writer.transport.abort()
                return
            ends.append(up_writer)
            self._writers.add(up_writer)
            pumps = [asyncio.ensure_future(self._pump(reader, up_writer)),
                     asyncio.ensure_future(self._pump(up_reader, writer))]
        else:
            pumps = [asyncio.ensure_future(self._swallow(reader))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for end in ends:
                end.transport.abort()
                self._writers.discard(end)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self.mode == "forward":
                writer.write(data)
                await writer.drain()

    @staticmethod
    async def _swallow(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass


def _tansu_behind(broker_port: int, advertised_port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{broker_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{advertised_port}", "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture
async def linked_broker(tmp_path: Path) -> AsyncIterator[FaultyLink]:
    """A private Tansu reachable only through a FaultyLink."""
    broker_port = free_port()
    link = FaultyLink(broker_port)
    await link.start()
    process = _tansu_behind(broker_port, link.port, tmp_path / "tansu.log")
    try:
        await eventually(lambda: asyncio.to_thread(port_open, "127.0.0.1", broker_port), timeout=20,
                         what="the private broker to listen")
        yield link
    finally:
        await link.close()
        _stop(process)


async def test_network_partition_loses_no_in_flight_batch_and_refused_connections_are_not_hammered(
        make_database: Callable[[str], str], linked_broker: FaultyLink, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    link = linked_broker
    bootstrap = f"127.0.0.1:{link.port}"
    url = make_database("management")
    topic = TopicSpec(unique("faults-link"), 3)
    total, expected = await _backlog(url, bootstrap, schemas, topic, keys=20, count=5_000)

    async with running_relay(url, bootstrap, topic, config=replace(FAST, batch_size=100)) as relay:
        await eventually(lambda: _at_least(relay, 500), timeout=20, what="the relay to be mid-drain")
        link.swallow()  # the batches in flight now, and all after, vanish on the wire
        confirmed = relay.published_total
        await eventually(lambda: _opened(relay), timeout=20, what="the breaker to open on timeouts")
        assert await published(url) <= confirmed + 100, "rows the broker never confirmed were marked published"

        link.refuse()  # now every attempt fails at once: only the breaker and the backoff pace the relay
        refused_at, failures_before, accepted_before = time.monotonic(), relay.failures_total, link.accepted
        opened_before = relay.breaker.opened_total
        await eventually(lambda: _opened(relay, opened_before + 3), timeout=20,
                         what="half-open trials against refused connections")
        refused_for = time.monotonic() - refused_at
        failures = relay.failures_total - failures_before
        connects = link.accepted - accepted_before
        assert relay.failures_total == FAST.breaker_threshold + relay.breaker.opened_total - 1
        bound = 1 + refused_for / FAST.breaker_reset
        assert failures <= bound, f"{failures} failed rounds in {refused_for:.1f}s of refusals (bound {bound:.0f})"
        assert connects <= 10 * bound, f"{connects} connection attempts in {refused_for:.1f}s of refusals"
        left = await unpublished(url)
        assert left > 0

        link.heal()
        await eventually(lambda: _all_published(url), timeout=30, what="the backlog to drain after the network healed")
        assert relay.breaker.state is BreakerState.CLOSED
        assert _sample(relay, "outbox_relay_errors_total") == 0
        records = await read_all(bootstrap, topic.name)
    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == total


async def _opened(relay: Relay, times: int = 1) -> bool:
    return relay.breaker.opened_total >= times


# -- c. the relay process is SIGKILLed mid-drain; a new one finishes ---------------------------------------------

def _relay_process(url: str, bootstrap: str, topic: TopicSpec, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "RELAY_DATABASE_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RELAY_PORT": str(free_port()),
        "RELAY_BATCH_SIZE": "200",
        "RELAY_POLL_INTERVAL": "0.5",
        "RELAY_LEASE_TTL": "5",
        "RELAY_HEARTBEAT_INTERVAL": "0.3",
        "RELAY_PUBLISH_TIMEOUT": "1",
        "RELAY_BACKOFF_BASE": "0.05",
        "RELAY_BACKOFF_CAP": "0.5",
        "RELAY_BREAKER_THRESHOLD": "2",
        "RELAY_BREAKER_RESET": "0.5",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "eventbus.outbox.main", "relaytest", f"{topic.name}:{topic.partitions}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


async def test_relay_process_killed_mid_drain_loses_nothing(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str], tmp_path: Path) -> None:
    url = make_database("management")
    topic = TopicSpec(unique("faults-kill"), 3)
    # big enough that the relay cannot drain it between two looks (the freeze below is a race it must win)
    total, expected = await _backlog(url, bootstrap, schemas, topic, keys=40, count=60_000)
    rng = random.Random()
    log = tmp_path / "relay.log"

    first = _relay_process(url, bootstrap, topic, log)
    conn = await asyncpg.connect(plain_url(url))
    ends = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await ends.start()
    try:
        parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]

        async def on_topic() -> int:
            """A lower bound of the records on the topic (Tansu: the last batch's base offset + 1)."""
            return sum((await ends.end_offsets(parts)).values())

        async def marked() -> int:
            return int(await conn.fetchval("SELECT count(*) FROM outbox_published"))

        async def quiet() -> bool:  # the frozen relay's last statement has finished in the database
            return not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state = 'active'")

        attempts = 0

        async def frozen_mid_batch() -> bool:
            """Freeze the relay right after a round's records reached the broker; keep it frozen if they are
            not all marked yet (confirmed or in flight, not marked: mid-batch), else let it go on."""
            nonlocal attempts
            assert first.poll() is None, f"the relay exited with {first.returncode}; see {log}"
            lower = await on_topic()  # first: it only grows, so lower > marked means unmarked records now
            done = await marked()
            assert done < total, "the relay drained everything before it could be caught mid-batch"
            if done < 1_000 or (lower <= done and rng.random() > 0.2):
                return False
            attempts += 1
            first.send_signal(signal.SIGSTOP)
            await eventually(quiet, timeout=10, what="the frozen relay's statements to finish")
            if len(await read_all(bootstrap, topic.name)) > await marked():
                return True
            first.send_signal(signal.SIGCONT)
            return False

        await eventually(frozen_mid_batch, timeout=40, interval=0.001, what="the relay frozen mid-batch")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = time.monotonic()
        marked_at_kill = await marked()
        on_topic_at_kill = len(await read_all(bootstrap, topic.name))
    finally:
        _stop(first)
        await ends.stop()
        await conn.close()
    assert marked_at_kill < total, "the relay finished before it was killed; the test proves nothing"
    assert on_topic_at_kill > marked_at_kill, "the relay was not killed mid-batch"
    print(f"killed after {attempts} freezes with {marked_at_kill} rows marked and {on_topic_at_kill} records on "
          f"the topic ({on_topic_at_kill - marked_at_kill} published, not marked)")

    second = _relay_process(url, bootstrap, topic, log)
    try:
        async def drained() -> bool:
            assert second.poll() is None, f"the new relay exited with {second.returncode}; see {log}"
            return await _all_published(url)

        # the killed relay's leases must expire first (RELAY_LEASE_TTL=5)
        await eventually(drained, timeout=40, interval=0.2, what="the new relay to drain the rest")
        print(f"the new relay drained the rest {time.monotonic() - killed_at:.1f}s after the kill")
    finally:
        assert _stop(second) == 0, f"the new relay did not stop cleanly; see {log}"
    records = await read_all(bootstrap, topic.name)
    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == total
    assert await published(url) == total


# -- d. the database goes down mid-drain; the relay waits and resumes by itself -----------------------------------

async def test_database_down_mid_drain_relay_resumes_by_itself(
        private_pg: EmbeddedPostgres, bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = await asyncio.to_thread(_migrate, private_pg.url)
    topic = TopicSpec(unique("faults-db"), 3)
    total, expected = await _backlog(url, bootstrap, schemas, topic, keys=20, count=20_000)
    config = replace(FAST, batch_size=200)

    async with running_relay(url, bootstrap, topic, config=config) as relay:
        await eventually(lambda: _at_least(relay, 1_000), timeout=30, what="the relay to be mid-drain")
        await asyncio.to_thread(private_pg.kill)  # a crash: no shutdown, the relay's connections just die
        confirmed_at_crash = relay.published_total
        assert confirmed_at_crash < total, "the relay finished before the crash; the test proves nothing"

        async def noticed() -> bool:
            return not relay.database_ok and _sample(relay, "outbox_database_errors_total") >= 3

        await eventually(noticed, timeout=20, what="the relay to notice the database is down and retry")
        assert relay.published_total < total
        await asyncio.to_thread(private_pg.start)

        await eventually(lambda: _all_published(url), timeout=40, interval=0.2,
                         what="the relay to resume by itself and drain")
        assert relay.database_ok
        assert _sample(relay, "outbox_relay_errors_total") == 0, relay.last_error
        records = await read_all(bootstrap, topic.name)
    result = check_topic(records, expected, topic.partitions)
    assert result.distinct == total
    # it kept its place: rows the broker confirmed before the crash were marked afterwards, not sent again
    assert result.duplicates == 0, f"{result.duplicates} events were published twice"


async def _at_least(relay: Relay, n: int) -> bool:
    return relay.published_total >= n
