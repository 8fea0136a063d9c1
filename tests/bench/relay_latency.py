"""Phase 2 of `tests.bench.relay`: commit -> readable latency, with the relay as its own process: idle
(single events spaced out) and at a steady rate from writer processes; every committed event readable, once."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventbus.db import create_engine, plain_url
from eventbus.outbox.writer import lock_key
from eventbus.settings import REPO_ROOT
from eventbus.topics import TopicSpec, ensure_topics, partitions_of
from tests.bench.common import say
from tests.bench.relay_common import (
    RelayProcess,
    Rows,
    Run,
    new_database,
    percentile,
    relay_process,
    stop_process,
    writer,
)
from tests.integration.outbox_helpers import COLUMNS, EVENT, payload
from tests.waiting import eventually

GOAL_IDLE_P99_MS = 50.0


class Arrivals:
    """A consumer assigned to every partition from the end, stamping each event id when it is readable."""

    def __init__(self, bootstrap: str, topic: str, wait_ms: int) -> None:
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                         fetch_max_wait_ms=wait_ms)
        self.topic = topic
        self.at: dict[str, float] = {}
        self.records = 0  # duplicates included
        self.waiting: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        parts = [TopicPartition(self.topic, p) for p in sorted(await partitions_of(self.consumer, self.topic))]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        for tp in parts:
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._poll())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.consumer.stop()

    async def _poll(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=1000)
            now = time.monotonic()  # CLOCK_MONOTONIC: the same clock in the writer process
            for records in batch.values():
                self.records += len(records)
                for record in records:
                    event_id = dict(record.headers)["event_id"].decode()
                    self.at.setdefault(event_id, now)
                    if (event := self.waiting.pop(event_id, None)) is not None:
                        event.set()

    async def wait_for(self, event_id: str, timeout: float) -> float:
        if event_id not in self.at:
            event = self.waiting.setdefault(event_id, asyncio.Event())
            await asyncio.wait_for(event.wait(), timeout)
        return self.at[event_id]


async def latency(run: Run) -> None:
    args = run.args
    url = await new_database(run, "latency")
    topic = TopicSpec(f"bench.{run.tag}.latency", args.partitions)
    await ensure_topics(run.bootstrap, [topic])
    arrivals = Arrivals(run.bootstrap, topic.name, args.consumer_wait_ms)
    await arrivals.start()
    relay = relay_process(run, "benchlatency", url, topic)
    engine = create_engine(url)
    w = writer(topic.name)
    rng = random.Random(args.seed)
    keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(args.keys)]
    committed: dict[str, float] = {}

    async def commit_one() -> str:
        async with engine.connect() as conn:
            async with conn.begin():
                envelope = await w.add(conn, EVENT, 0, payload(rng.choice(keys)))
            event_id = str(envelope["meta"]["event_id"])
            committed[event_id] = time.monotonic()
        return event_id

    try:
        say("latency: waiting for the relay process to publish a first event")
        deadline = time.monotonic() + 60
        while True:
            if relay.poll() is not None:
                raise RuntimeError(f"the relay exited with {relay.returncode}; see {run.workdir}")
            try:
                await arrivals.wait_for(await commit_one(), 2)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        say(f"latency: idle, {args.idle_samples} single events spaced out")
        idle = []
        for _ in range(args.idle_samples):
            event_id = await commit_one()
            idle.append(await arrivals.wait_for(event_id, 10) - committed[event_id])
            await asyncio.sleep(rng.uniform(0.01, 0.04))
        report_latency(run, "idle", idle, goal=True)

        total = int(args.rate * args.steady_seconds)
        say(f"latency: steady {args.rate}/s for {args.steady_seconds:g}s ({total:,} events), "
            f"{args.writers} writer processes")
        children = []
        for i in range(args.writers):
            out = run.workdir / f"steady-commits-{i}.txt"
            children.append((out, await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bench.relay", "--writer-child", url, topic.name,
                str(args.rate / args.writers), str(args.steady_seconds), str(args.keys), str(args.seed + i), str(out),
                cwd=REPO_ROOT)))
        achieved = 0.0
        steady = []
        steady_ids: list[str] = []
        for out, child in children:
            code = await child.wait()
            if code != 0:
                raise RuntimeError(f"a writer process exited with {code}")
            lines = out.read_text().split()
            achieved += float(lines[0])
            for event_id, at in zip(lines[1::2], lines[2::2], strict=True):
                steady_ids.append(event_id)
                steady.append(await arrivals.wait_for(event_id, 30) - float(at))
        report_latency(run, f"steady {args.rate}/s (writer achieved {achieved:,.0f}/s)", steady, goal=False)
        await check_arrivals(run, arrivals, {*committed, *steady_ids}, relay)
    finally:
        stop_process(relay)
        await engine.dispose()
        await arrivals.stop()


async def check_arrivals(run: Run, arrivals: Arrivals, committed: set[str], relay: RelayProcess) -> None:
    """Every event committed in the latency phase readable (warm-up attempts too), each once."""

    async def all_arrived() -> bool:
        return committed <= arrivals.at.keys()

    with contextlib.suppress(AssertionError):
        await eventually(all_arrived, timeout=30, interval=0.05, what="every latency event readable")
    missing = len(committed - arrivals.at.keys())
    unexpected = len(arrivals.at.keys() - committed)
    run.check("latency: every committed event readable", not missing and not unexpected,
              f"{len(committed) - missing:,} of {len(committed):,}, {unexpected} never committed")
    duplicates, failures = arrivals.records - len(arrivals.at), await relay.failures()
    run.check("latency: no duplicates unless a publish round failed", duplicates == 0 or bool(failures),
              f"{duplicates:,} duplicates, {'?' if failures is None else failures} failed publish rounds")


def report_latency(run: Run, label: str, seconds: list[float], *, goal: bool) -> None:
    ms = [s * 1000 for s in seconds]
    p50, p99 = percentile(ms, 50), percentile(ms, 99)
    value = f"p50 {p50:.1f} / p99 {p99:.1f} / max {max(ms):.1f} ms (n={len(ms):,})"
    if goal:
        run.report("latency", f"commit -> readable, {label}", value, f"p99 <= {GOAL_IDLE_P99_MS:.0f} ms",
                   p99 <= GOAL_IDLE_P99_MS)
    else:
        run.report("latency", f"commit -> readable, {label}", value)


_INSERT = f"""
INSERT INTO outbox ({", ".join(COLUMNS)})
SELECT {", ".join(f"${i + 1}" for i in range(len(COLUMNS)))}
FROM (SELECT pg_advisory_xact_lock(${len(COLUMNS) + 1})) AS same_key_in_commit_order
"""


async def writer_child(url: str, topic: str, rate: float, seconds: float, keys: int, seed: int) -> str:
    """Commit single-event transactions at `rate`/s; return "achieved-rate (event_id commit-time)*".

    The rows and the statement are OutboxWriter's; it runs on plain asyncpg (no SQLAlchemy, no schema
    validation) so that the writers leave as much of the machine as possible to the relay."""
    pool = await asyncpg.create_pool(plain_url(url), min_size=16, max_size=16)
    rows = Rows(topic, keys, random.Random(seed))
    stamps: list[tuple[str, float]] = []

    async def commit_one() -> None:
        (row,), (event_id,) = rows.make(1)
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(_INSERT, *row, lock_key(topic, str(row[COLUMNS.index("message_key")])))
        stamps.append((event_id, time.monotonic()))

    total = int(rate * seconds)
    gate = asyncio.Semaphore(16)

    async def paced() -> None:
        async with gate:
            await commit_one()

    tasks = []
    started = time.monotonic()
    for i in range(total):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(paced()))
    await asyncio.gather(*tasks)
    achieved = total / (time.monotonic() - started)
    await pool.close()
    return f"{achieved}\n" + "".join(f"{e} {t}\n" for e, t in stamps)
