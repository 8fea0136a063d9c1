"""`make bench-relay`: the outbox relay's throughput, end-to-end latency and retention, in one run.

- throughput: a backlog of --events outbox rows (COPY, shaped exactly like OutboxWriter's rows) drained by
  a relay started cold; events/s from the relay's start to every row marked published, checked on the topic
  (count and event ids); against raw aiokafka producers sending the same messages on the same broker (send
  without awaiting each, then flush). Goal: relay >= 0.6 x the best raw producer.
- latency: commit -> readable by a consumer that is already assigned and polling, with the relay as its
  own process: idle (single events spaced out) and at a steady --rate events/s. Goal: idle p99 <= 50 ms.
- soak: --soak-events written continuously (COPY chunks, keeping the backlog under --soak-backlog) with a
  short retention window; samples of the outbox's rows and size show whether they stay bounded.

Checks (they fail the run; goals are only reported): every event on the topic in per-key commit order, no
duplicates unless a publish round failed (throughput, latency, and the soak when it is at most 200k events),
retention empties the outbox. `--quick` runs all of it on small inputs in seconds (`make bench-quick`).

Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set, else starts embedded PostgreSQL and Tansu on free
ports in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import io
import logging
import os
import pstats
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from eventbus.db import create_engine, plain_url
from eventbus.migrate import upgrade
from eventbus.outbox import OutboxWriter, Route
from eventbus.outbox import writer as outbox_writer
from eventbus.outbox.relay import Relay, RelayConfig
from eventbus.outbox.writer import lock_key
from eventbus.schemas.client import SchemaClient
from eventbus.settings import REPO_ROOT
from eventbus.topics import TopicSpec, ensure_topics, partitions_of
from tests.bench.common import drop_databases, say, stack
from tests.integration.outbox_helpers import COLUMNS, EVENT, check_topic, payload, read_all
from tests.waiting import eventually, free_port

GOAL_RATIO = 0.6
GOAL_IDLE_P99_MS = 50.0
PHASES = ("throughput", "latency", "soak")
#: --quick: every phase and every check, small; speed is still reported (never judged: goals do not fail a run)
QUICK = {"events": 10_000, "keys": 100, "idle_samples": 20, "rate": 200, "steady_seconds": 2.0,
         "soak_events": 20_000, "soak_retention": 2.0, "soak_cleanup_interval": 0.5, "soak_backlog": 5000,
         "soak_chunk": 2000, "soak_sample_every": 0.5}
SOAK_TOPIC_CHECK_MAX = 200_000  # larger soaks are not read back (memory, time)



@dataclass
class Run:
    args: argparse.Namespace
    server_url: str
    bootstrap: str
    workdir: Path
    tag: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # (phase, metric, value, goal/verdict)
    ok: bool = True
    databases: list[str] = field(default_factory=list)

    def report(self, phase: str, metric: str, value: str, goal: str = "", passed: bool | None = None) -> None:
        verdict = "" if passed is None else ("  ok" if passed else "  MISSED")
        self.rows.append((phase, metric, value, goal + verdict))
        say(f"  {phase}: {metric} = {value}{(' (' + goal + verdict + ')') if goal else ''}")

    def check(self, what: str, passed: bool, detail: str = "") -> None:
        self.ok &= passed
        self.report("check", what, detail or ("yes" if passed else "NO"), passed=passed)


# -- the stack and the data ------------------------------------------------------------------------------------


async def new_database(run: Run, phase: str) -> str:
    name = f"bench_relay_{run.tag}_{phase}"
    run.databases.append(name)
    # "heads": every branch of the tree (the outbox is the same at every stage of the service's playbooks)
    return await asyncio.to_thread(upgrade, "management", run.server_url, "heads", database=name)


def writer(topic: str) -> OutboxWriter:
    return OutboxWriter(producer="bench", routes={EVENT: Route(topic, "task_id")},
                        schemas=SchemaClient(None, fallback_dir=REPO_ROOT / "schemas"))


class Rows:
    """Outbox rows exactly as OutboxWriter.add inserts them, on a fixed set of keys."""

    def __init__(self, topic: str, keys: int, rng: random.Random) -> None:
        # murmur2 is pure Python (~20 us): hash each of our few keys once, or generating a million rows
        # would take the CPU the relay is being measured on (this process only)
        if not hasattr(outbox_writer.key_hash, "cache_info"):
            outbox_writer.key_hash = functools.lru_cache(maxsize=None)(outbox_writer.key_hash)
        self.writer = writer(topic)
        self.keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(keys)]
        self.rng = rng
        self.seq = 0

    def make(self, n: int) -> tuple[list[tuple[object, ...]], list[str]]:
        rows, ids = [], []
        for _ in range(n):
            envelope = self.writer.envelope(EVENT, 0, payload(self.rng.choice(self.keys), self.seq))
            self.seq += 1
            row = self.writer.row(envelope)
            rows.append(tuple(row[c] for c in COLUMNS))
            ids.append(str(envelope["meta"]["event_id"]))
        return rows, ids


async def copy_rows(conn: asyncpg.Connection, rows: list[tuple[object, ...]], chunk: int = 20_000) -> None:
    for start in range(0, len(rows), chunk):
        await conn.copy_records_to_table("outbox", records=rows[start:start + chunk], columns=COLUMNS)


@dataclass
class RelayProcess:
    process: subprocess.Popen[bytes]
    port: int

    def poll(self) -> int | None:
        return self.process.poll()

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def failures(self) -> int | None:
        """Publish rounds that failed so far (its /health), None when it does not answer."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                body = (await client.get(f"http://127.0.0.1:{self.port}/health")).json()
            return int(body["relay"]["failures_total"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None


def relay_process(run: Run, label: str, url: str, topic: TopicSpec, log_level: str = "WARNING",
                  **settings: object) -> RelayProcess:
    """`python -m eventbus.outbox.main` for the bench database at `url`: the relay's service is named like the
    database, so its own URL is found either way (`<SERVICE>_DATABASE_URL`, or DATABASE_URL's server)."""
    service, port = urlsplit(url).path.lstrip("/"), free_port()
    env = {**os.environ, f"{service.upper()}_DATABASE_URL": url, "DATABASE_URL": run.server_url,
           "KAFKA_BOOTSTRAP_SERVERS": run.bootstrap, "RELAY_PORT": str(port), "LOG_LEVEL": log_level,
           **{f"RELAY_{k.upper()}": str(v) for k, v in settings.items()}}
    with (run.workdir / f"relay-{label}.log").open("ab") as log:
        return RelayProcess(subprocess.Popen(
            [sys.executable, "-m", "eventbus.outbox.main", service, f"{topic.name}:{topic.partitions}"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), port)


def stop_process(relay: RelayProcess) -> None:
    process = relay.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def all_marked(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def empty(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM outbox")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]


# -- throughput --------------------------------------------------------------------------------------------------
async def raw_producer(run: Run, topic: str, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]],
                       batch_bytes: int) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=run.bootstrap, acks="all", enable_idempotence=False,
                                max_batch_size=batch_bytes, max_request_size=batch_bytes + 100_000, linger_ms=0)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = [await producer.send(topic, value=value, key=key, headers=headers)
                   for key, value, headers in messages]
        await producer.flush()
        seconds = time.perf_counter() - started
        failed = sum(1 for f in futures if f.exception() is not None)
        if failed:
            raise RuntimeError(f"raw producer: {failed} sends failed")
        return seconds
    finally:
        await producer.stop()


async def throughput(run: Run) -> None:
    args = run.args
    n = args.events
    say(f"throughput: building {n:,} outbox rows on {args.keys:,} keys")
    url = await new_database(run, "throughput")
    relay_topic = TopicSpec(f"bench.{run.tag}.relay", args.partitions)
    raw_topics = {label: TopicSpec(f"bench.{run.tag}.raw-{label}", args.partitions) for label in ("16k", "1m", "16k2")}
    await ensure_topics(run.bootstrap, [relay_topic, *raw_topics.values()])
    rows, ids = Rows(relay_topic.name, args.keys, random.Random(args.seed)).make(n)
    values = [r[COLUMNS.index("value")] for r in rows]
    size = statistics.mean(len(v) for v in values)  # type: ignore[arg-type]
    messages = [(str(r[COLUMNS.index("message_key")]).encode(), r[COLUMNS.index("value")],
                 [(k, v.encode()) for k, v in orjson.loads(str(r[COLUMNS.index("headers")]))])
                for r in rows]

    raw: dict[str, float] = {}
    for label, batch in (("16k", 16_384), ("1m", 1_000_000)):
        say(f"throughput: raw aiokafka producer, {batch:,}-byte batches, {n:,} messages")
        raw[label] = n / await raw_producer(run, raw_topics[label].name, messages, batch)  # type: ignore[arg-type]
        say(f"  {raw[label]:,.0f} msg/s")

    conn = await asyncpg.connect(plain_url(url))
    try:
        started = time.perf_counter()
        await copy_rows(conn, rows)
        say(f"throughput: backlog of {n:,} rows inserted by COPY in {time.perf_counter() - started:.1f}s")
        await conn.execute("VACUUM ANALYZE outbox")
        config = RelayConfig(batch_size=args.batch_size)
        relay = Relay(service="bench", dsn=plain_url(url), bootstrap_servers=run.bootstrap, topics=[relay_topic],
                      config=config, instance_id=f"bench-{run.tag}")
        say(f"throughput: relay started cold (batch {config.batch_size})")
        profile = cProfile.Profile() if args.profile else None
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        task = asyncio.create_task(relay.run())
        first = None
        next_note = started + 2
        while relay.published_total < n:
            if task.done():
                raise RuntimeError(f"the relay stopped: {task.exception()!r}")
            now = time.perf_counter()
            if first is None and relay.published_total:
                first = now - started
            if now >= next_note:
                say(f"  {relay.published_total:,} confirmed ({relay.published_total / (now - started):,.0f}/s)")
                next_note = now + 2
            await asyncio.sleep(0.005)
        await eventually(lambda: all_marked(conn), timeout=600, interval=0.005, what="every row marked")
        seconds = time.perf_counter() - started
        if profile is not None:
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
            say(f"profile of the drain (this process: relay and the bench's waiting), by own time:\n{out.getvalue()}")
        failures = relay.failures_total
        relay.stop()
        await task
    finally:
        await conn.close()
    rate = n / seconds
    say(f"  relay: {rate:,.0f} events/s ({seconds:.2f}s, first confirm after {first or 0:.2f}s)")
    say("throughput: raw aiokafka producer again (16 KiB batches), to see the broker's drift")
    raw["16k2"] = n / await raw_producer(run, raw_topics["16k2"].name, messages, 16_384)  # type: ignore[arg-type]
    say(f"  {raw['16k2']:,.0f} msg/s")

    records = await read_all(run.bootstrap, relay_topic.name, timeout=120)
    seen = {dict(r.headers)["event_id"].decode() for r in records}
    expected: dict[str, list[str]] = defaultdict(list)
    for row, event_id in zip(rows, ids, strict=True):
        expected[str(row[COLUMNS.index("message_key")])].append(event_id)
    try:
        check_topic(records, expected, relay_topic.partitions)
        in_order = ""
    except AssertionError as exc:
        in_order = str(exc)
    best = max(raw.values())
    run.report("throughput", "message size (avg), partitions", f"{size:,.0f} B, {args.partitions}")
    run.report("throughput", "raw aiokafka, 16 KiB batches (before / after relay)",
               f"{raw['16k']:,.0f} / {raw['16k2']:,.0f} msg/s")
    run.report("throughput", "raw aiokafka, 1 MB batches", f"{raw['1m']:,.0f} msg/s")
    run.report("throughput", f"relay drain of {n:,} (cold start -> all marked)",
               f"{rate:,.0f} events/s ({seconds:.2f}s; first confirm {first or 0:.2f}s)")
    run.report("throughput", "relay / best raw", f"{rate / best:.3f}", f">= {GOAL_RATIO}", rate / best >= GOAL_RATIO)
    run.check("every backlog event on the relay topic", len(seen) == n and seen == set(ids),
              f"{len(seen):,} distinct of {n:,} ({len(records) - len(seen):,} duplicates)")
    run.check("per-key order on the relay topic", not in_order, in_order or "commit order for every key")
    duplicates = len(records) - len(seen)
    run.check("no duplicates unless a publish round failed", duplicates == 0 or failures > 0,
              f"{duplicates:,} duplicates, {failures} failed publish rounds")


# -- latency -----------------------------------------------------------------------------------------------------
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


# -- retention soak ----------------------------------------------------------------------------------------------
async def soak(run: Run) -> None:
    args = run.args
    total = args.soak_events
    url = await new_database(run, "soak")
    topic = TopicSpec(f"bench.{run.tag}.soak", args.partitions)
    await ensure_topics(run.bootstrap, [topic])
    relay = relay_process(run, "benchsoak", url, topic, "INFO", retention_hours=args.soak_retention / 3600,
                          cleanup_interval=args.soak_cleanup_interval, batch_size=args.batch_size)
    conn = await asyncpg.connect(plain_url(url))
    sampler = await asyncpg.connect(plain_url(url))
    rows = Rows(topic.name, args.keys, random.Random(args.seed))
    expected: dict[str, list[str]] = defaultdict(list)  # per key, in commit order (small soaks only)
    written = 0
    failures: int | None = None
    samples: list[tuple[float, int, int, int, int]] = []  # (t, written, rows, unpublished, bytes)
    say(f"soak: {total:,} events, retention {args.soak_retention:g}s, cleanup every {args.soak_cleanup_interval:g}s, "
        f"backlog kept under {args.soak_backlog:,}")

    async def sample() -> tuple[float, int, int, int, int]:
        record = await sampler.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE published_at IS NULL) AS unpublished, "
            "pg_total_relation_size('outbox') AS size FROM outbox")
        assert record is not None
        point = (time.perf_counter() - started, written, record["n"], record["unpublished"], record["size"])
        samples.append(point)
        say(f"  t={point[0]:6.1f}s written {written:>10,}  outbox rows {point[2]:>8,}  unpublished {point[3]:>7,}  "
            f"size {point[4] / 2**20:7.1f} MiB")
        return point

    async def sampling() -> None:
        while True:
            await asyncio.sleep(args.soak_sample_every)
            await sample()

    started = time.perf_counter()
    sampling_task = asyncio.create_task(sampling())
    try:
        while written < total:
            if relay.poll() is not None:
                raise RuntimeError(f"the soak relay exited with {relay.returncode}; see {run.workdir}")
            backlog = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            if backlog >= args.soak_backlog:
                await asyncio.sleep(0.05)
                continue
            batch, ids = rows.make(min(args.soak_chunk, total - written))
            if total <= SOAK_TOPIC_CHECK_MAX:
                for row, event_id in zip(batch, ids, strict=True):
                    expected[str(row[COLUMNS.index("message_key")])].append(event_id)
            await copy_rows(conn, batch)
            written += len(batch)
        fed = time.perf_counter() - started
        await eventually(lambda: all_marked(conn), timeout=600, interval=0.1, what="the soak backlog drained")
        drained = time.perf_counter() - started
        # one more retention window: the cleanup must take the table back down to nothing
        with contextlib.suppress(AssertionError):
            await eventually(lambda: empty(conn), timeout=args.soak_retention + 4 * args.soak_cleanup_interval + 30,
                             interval=0.5, what="the outbox emptied by retention")
        failures = await relay.failures()
    finally:
        sampling_task.cancel()
        await asyncio.gather(sampling_task, return_exceptions=True)
        stop_process(relay)
    final = await sample()
    await conn.close()
    await sampler.close()

    warm = args.soak_retention + 2 * args.soak_cleanup_interval
    steady = [s for s in samples if warm <= s[0] <= fed] or samples
    half = len(steady) // 2
    first_max = max((s[2] for s in steady[:half]), default=0)
    second_max = max((s[2] for s in steady[half:]), default=0)
    first_size = max((s[4] for s in steady[:half]), default=0)
    second_size = max((s[4] for s in steady[half:]), default=0)
    rate = total / drained
    bound = int(rate * (args.soak_retention + args.soak_cleanup_interval) * 1.5) + args.soak_backlog
    peak_rows = max(s[2] for s in samples)
    run.report("soak", f"{total:,} events fed / drained", f"{fed:.0f}s / {drained:.0f}s ({rate:,.0f} events/s)")
    run.report("soak", "outbox rows in steady state (max 1st / 2nd half)", f"{first_max:,} / {second_max:,}")
    run.report("soak", "outbox rows peak vs. bound rate x (retention + cleanup) x 1.5 + backlog",
               f"{peak_rows:,} vs. {bound:,}", "bounded", peak_rows <= bound and second_max <= 1.25 * first_max + 1000)
    run.report("soak", "outbox size in steady state (max 1st / 2nd half)",
               f"{first_size / 2**20:.1f} / {second_size / 2**20:.1f} MiB", "2nd <= 1.25 x 1st",
               second_size <= 1.25 * first_size)
    run.report("soak", "outbox size: peak / at the end", f"{max(s[4] for s in samples) / 2**20:.1f} / "
               f"{final[4] / 2**20:.1f} MiB; rows at the end {final[2]:,}")
    run.check("soak: retention deleted every published row", final[2] == 0, f"{final[2]:,} rows left")
    if expected:
        await check_soak_topic(run, topic, expected, failures)


async def check_soak_topic(run: Run, topic: TopicSpec, expected: dict[str, list[str]], failures: int | None) -> None:
    records = await read_all(run.bootstrap, topic.name, timeout=120)
    try:
        result = check_topic(records, expected, topic.partitions)
        detail, duplicates = f"{result.distinct:,} events in commit order per key", result.duplicates
    except AssertionError as exc:
        detail, duplicates = str(exc), -1
    run.check("soak: every event on the topic, per-key order", duplicates >= 0, detail)
    if duplicates >= 0:
        run.check("soak: no duplicates unless a publish round failed", duplicates == 0 or bool(failures),
                  f"{duplicates:,} duplicates, {'?' if failures is None else failures} failed publish rounds")


# -- driver ------------------------------------------------------------------------------------------------------
def table(run: Run) -> str:
    widths = [max(len(r[i]) for r in [("phase", "metric", "value", "goal"), *run.rows]) for i in range(4)]
    lines = []
    for row in [("phase", "metric", "value", "goal"), *run.rows]:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if row[0] == "phase":
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.relay", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="backlog to drain for throughput (default 100000)")
    p.add_argument("--keys", type=int, default=1000, help="distinct message keys (default 1000)")
    p.add_argument("--partitions", type=int, default=4, help="partitions of each bench topic (default 4)")
    p.add_argument("--batch-size", type=int, default=RelayConfig().batch_size,
                   help=f"relay batch size (default {RelayConfig().batch_size}, RELAY_BATCH_SIZE's default)")
    p.add_argument("--idle-samples", type=int, default=200, help="idle latency samples (default 200)")
    p.add_argument("--rate", type=int, default=500, help="steady latency: events/s (default 500)")
    p.add_argument("--steady-seconds", type=float, default=10.0, help="steady latency: seconds (default 10)")
    p.add_argument("--writers", type=int, default=1, help="steady latency: writer processes (default 1)")
    p.add_argument("--consumer-wait-ms", type=int, default=10,
                   help="the latency consumer's fetch_max_wait_ms (default 10; Tansu does not answer long polls early)")
    p.add_argument("--soak-events", type=int, default=1_000_000, help="events written in the soak (default 1000000)")
    p.add_argument("--soak-retention", type=float, default=5.0, help="soak retention window, seconds (default 5)")
    p.add_argument("--soak-cleanup-interval", type=float, default=1.0, help="soak cleanup interval, s (default 1)")
    p.add_argument("--soak-backlog", type=int, default=20_000, help="soak: feed only while the backlog is below this")
    p.add_argument("--soak-chunk", type=int, default=5_000, help="soak: rows per COPY (default 5000)")
    p.add_argument("--soak-sample-every", type=float, default=2.0, help="soak: seconds between samples (default 2)")
    p.add_argument("--phases", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=list(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)} (default all)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--profile", action="store_true", help="cProfile the relay's drain and print the top functions")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and bench databases")
    p.add_argument("--quick", action="store_true",
                   help="every phase and check on small inputs, in seconds: " + ", ".join(
                       f"--{k.replace('_', '-')} {v:g}" for k, v in QUICK.items()) + " (explicit options win)")
    p.add_argument("--writer-child", nargs=7, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    unknown = set(args.phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


async def amain(run: Run) -> None:
    try:
        for phase in PHASES:
            if phase in run.args.phases:
                await {"throughput": throughput, "latency": latency, "soak": soak}[phase](run)
    finally:
        if os.environ.get("DATABASE_URL") and not run.args.keep:  # an embedded server goes with the workdir
            await drop_databases(run.server_url, run.databases)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the idempotence probe's expected refusal
    if args.writer_child:
        url, topic, rate, seconds, keys, seed, out = args.writer_child
        Path(out).write_text(asyncio.run(writer_child(url, topic, float(rate), float(seconds), int(keys), int(seed))))
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    run: Run | None = None
    try:
        with stack(workdir) as (server_url, bootstrap):
            run = Run(args, server_url, bootstrap, workdir, uuid.uuid4().hex[:8])
            asyncio.run(amain(run))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"bench-relay{' --quick' if args.quick else ''}: {os.cpu_count()} CPUs, relay batch {args.batch_size}, "
          f"{args.partitions} partitions, phases {','.join(args.phases)}")
    print(table(run))
    checks = [r for r in run.rows if r[0] == "check"]
    failed = [r for r in checks if not r[3].endswith("ok")]
    print(f"correctness: {len(checks) - len(failed)}/{len(checks)} checks passed (goals are reported, they do not "
          "fail the run)" + "".join(f"\n  FAILED: {r[1]}: {r[2]}" for r in failed))
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
