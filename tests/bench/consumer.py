"""`make bench-consumer`: applied events/s through the bonus consumer path, against raw aiokafka reads.

One run, one broker, one topic of pre-produced bonus traffic (TaskCompleted/TaskFailed for seeded
tasks), read by each variant under its own consumer group into its own copy of the seeded database:

- raw: aiokafka reads every record (no group, no work): the baseline;
- decode: the same, plus the processor's decode + schema validation per record (CPU only, no DB);
- processor: an aiokafka consumer feeding `BatchProcessor` batches the way the Faust agent does
  (up to CONSUMER_BATCH_MAX records across partitions; offsets committed after processing, every
  CONSUMER_COMMIT_INTERVAL);
- faust-noop: the Faust worker as a process around a processor that applies nothing: the framework's
  own cost, timed by its metrics;
- worker: the real Faust worker (`eventbus.consumer.main.serve` with the bonus handlers, what
  `python -m services.bonus.worker` runs) as a process, timed until every effect is visible in
  PostgreSQL (steady rate from its first commit, and from spawn);
- per-event: the processor one record per transaction, on a sample: what "one commit per event" costs;
- duplicates: a second topic with the same events plus redelivered copies, raw and through the processor.

Every applying variant is checked: one ledger row per (task, outcome) crediting the task's creator,
processed_events == events, nothing dead-lettered; a failed check fails the run (goals are only reported).
`--quick` runs every variant and check on small inputs in seconds (`make bench-quick`). Uses DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS when set, else starts embedded PostgreSQL and Tansu on free ports in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from eventbus.consumer.dlq import DeadLetterWriter, dlq_topic
from eventbus.consumer.messages import RawMessage
from eventbus.consumer.processor import BatchProcessor, Handler
from eventbus.consumer.worker import WorkerSettings
from eventbus.control import Control
from eventbus.db import plain_url, with_database
from eventbus.links import Link
from eventbus.migrate import upgrade
from eventbus.schemas.client import SchemaClient
from eventbus.settings import REPO_ROOT
from eventbus.topics import TopicSpec, ensure_topics
from services.bonus.consumers import BonusConsumers
from services.bonus.domain import CreditRule
from services.bonus.settings import BonusSettings
from services.flags import BONUS as FLAGS
from services.topology import TASK_RESULTS
from tests.bench.common import correctness_line, drop_databases, say, stack
from tests.bench.consumer_traffic import (
    REVISION,
    SWITCHES,
    Record,
    Traffic,
    make_traffic,
    produce,
    seed_database,
    with_redeliveries,
)
from tests.bench.consumer_worker import Launch, run_worker

GOAL = 5_000  # applied events/s on the 2-core reference machine
RULE: CreditRule = BonusSettings().credit_rule()  # the worker process's, from the same environment
VARIANTS = ("raw", "decode", "processor", "faust-noop", "worker", "per-event", "duplicates")
#: --quick: every variant and every check, small; speed is still reported (never judged: goals do not fail a run)
QUICK = {"events": 5000, "managers": 50, "per_event_sample": 200, "timeout": 120.0}



@dataclass
class Result:
    name: str
    records: int
    applied: int | None
    seconds: float
    topic: str
    note: str = ""

    @property
    def records_per_s(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def applied_per_s(self) -> float | None:
        return None if self.applied is None or self.seconds <= 0 else self.applied / self.seconds


@dataclass
class Run:
    args: argparse.Namespace
    server_url: str
    bootstrap: str
    workdir: Path
    tag: str
    topic: str
    dup_topic: str
    traffic: Traffic
    dup_records: list[Record] = field(default_factory=list)
    handlers: list[Handler] = field(default_factory=list)  # the bonus worker's, for the in-process variants
    databases: list[str] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append((what, ok, detail))
        say(f"  {'ok  ' if ok else 'FAIL'} {what} {detail}")


# -- the stack ----------------------------------------------------------------------------------


async def new_database(run: Run, variant: str) -> str:
    """A copy of the seeded template database for one variant; returns its asyncpg URL."""
    name = f"bench_{run.tag}_{variant.replace('-', '_')}"
    conn = await asyncpg.connect(plain_url(with_database(run.server_url, "postgres")))
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "bench_{run.tag}_template"')
    finally:
        await conn.close()
    run.databases.append(name)
    return plain_url(with_database(run.server_url, name))


# -- reading ------------------------------------------------------------------------------------
def consumer_for(run: Run, group: str | None) -> AIOKafkaConsumer:
    # the same fetch wait as the worker (see eventbus.consumer.transport)
    return AIOKafkaConsumer(bootstrap_servers=run.bootstrap, group_id=group, enable_auto_commit=False,
                            auto_offset_reset="earliest",
                            fetch_max_wait_ms=WorkerSettings().consumer_fetch_max_wait_ms)


async def assign_all(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> list[TopicPartition]:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    return tps


def to_raw(r: ConsumerRecord) -> RawMessage:  # what eventbus.consumer.worker.to_raw makes of a Faust message
    return RawMessage(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, list(r.headers or []))


async def read_raw(run: Run, topic: str, total: int, decode: BatchProcessor | None = None) -> float:
    consumer = consumer_for(run, None)
    await consumer.start()
    try:
        tps = await assign_all(consumer, topic, run.args.partitions)
        await consumer.seek_to_beginning(*tps)
        seen, started = 0, time.perf_counter()
        deadline = started + run.args.timeout
        while seen < total:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"read {seen} of {total} records from {topic}")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                if decode is not None:
                    await decode.decode_batch([to_raw(r) for r in records])
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def dlq_depth(run: Run, group: str, topic: str) -> int:
    consumer = consumer_for(run, None)
    await consumer.start()
    try:
        tps = [TopicPartition(dlq_topic(group, topic), p) for p in range(run.args.partitions)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


# -- applying -----------------------------------------------------------------------------------
def new_processor(run: Run, group: str, url: str) -> BatchProcessor:
    return BatchProcessor(group=group, dsn=url, schemas=SchemaClient(None, fallback_dir=REPO_ROOT / "schemas"),
                          handlers=run.handlers, dlq=DeadLetterWriter(run.bootstrap, group),
                          config=WorkerSettings().processor_config())


async def run_processor(run: Run, topic: str, total: int, group: str, url: str, batch_max: int,
                        profile: cProfile.Profile | None = None) -> tuple[float, BatchProcessor]:
    """Feed `total` records to a BatchProcessor in batches as the Faust agent does; (seconds, the
    processor, closed)."""
    await ensure_topics(run.bootstrap, [TopicSpec(dlq_topic(group, topic), run.args.partitions)])
    processor = new_processor(run, group, url)
    await processor.pool()
    consumer = consumer_for(run, group)
    await consumer.start()
    try:
        await assign_all(consumer, topic, run.args.partitions)
        seen, started, shown = 0, time.perf_counter(), 0
        commit_interval = WorkerSettings().consumer_commit_interval
        pending: dict[TopicPartition, int] = {}
        commit_at = started + commit_interval
        deadline = started + run.args.timeout
        if profile is not None:
            profile.enable()
        while seen < total:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"applied {seen} of {total} records from {topic}")
            fetched = await consumer.getmany(timeout_ms=500, max_records=min(batch_max, total - seen))
            batch = [to_raw(r) for records in fetched.values() for r in records]
            if not batch:
                continue
            await processor.process(batch)
            # like the worker: acked once processed, offsets committed every commit interval (and at the end)
            pending |= {tp: records[-1].offset + 1 for tp, records in fetched.items() if records}
            seen += len(batch)
            if time.perf_counter() >= commit_at or seen >= total:
                await consumer.commit(pending)
                pending, commit_at = {}, time.perf_counter() + commit_interval
            if seen - shown >= 10_000:
                shown = seen
                say(f"    {seen:,}/{total:,} ({seen / (time.perf_counter() - started):,.0f}/s)")
        if profile is not None:
            profile.disable()
        return time.perf_counter() - started, processor
    finally:
        await consumer.stop()
        await processor.close()


def processor_samples(processor: BatchProcessor) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in processor.metrics.registry.collect():
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


def batch_note(samples: dict[str, float], seconds: float) -> str:
    batches = samples.get("consumer_batch_size_count", 0.0)
    if not batches:
        return ""
    note = f"{batches:,.0f} batches of {samples.get('consumer_batch_size_sum', 0.0) / batches:,.0f}"
    busy = samples.get("consumer_batch_seconds_sum", 0.0)
    return note + (f", {busy / seconds:.0%} of the time in process()" if busy and seconds else "")


def notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def launch(run: Run, variant: str, url: str) -> Launch:
    return Launch(run.server_url, run.bootstrap, url, f"bench-{run.tag}-{variant}", run.topic, run.args.partitions,
                  run.args.batch_max, run.workdir, run.args.timeout, run.args.profile)


# -- correctness --------------------------------------------------------------------------------
async def verify(run: Run, label: str, url: str, group: str, topic: str, events: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        ledger = await conn.fetchrow(
            "SELECT count(*) AS rows, count(DISTINCT (task_id, outcome)) AS facts, coalesce(sum(amount), 0) AS total,"
            " count(*) FILTER (WHERE t.creator_id = l.manager_id) AS to_creator"
            " FROM ledger l LEFT JOIN tasks t ON t.id = l.task_id")
        processed = await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1", group)
        pending = await conn.fetchval("SELECT count(*) FROM pending_credits")
    finally:
        await conn.close()
    credits = run.traffic.expected_credits(RULE, events)
    run.check(f"{label}: one ledger row per (task, outcome)", ledger["rows"] == ledger["facts"] == events,
              f"rows={ledger['rows']:,} distinct={ledger['facts']:,} expected={events:,}")
    run.check(f"{label}: every credit goes to the task's creator, amounts per rule",
              ledger["to_creator"] == events and ledger["total"] == credits,
              f"to_creator={ledger['to_creator']:,} points={ledger['total']:,} expected={credits:,}")
    run.check(f"{label}: processed_events == events", processed == events, f"{processed:,}")
    run.check(f"{label}: no credit left pending (every completion had its rating)", pending == 0, f"{pending:,}")
    depth = await dlq_depth(run, group, topic)
    run.check(f"{label}: nothing in {dlq_topic(group, topic)}", depth == 0, f"{depth} records")


# -- the variants -------------------------------------------------------------------------------
async def bench(run: Run, profile: cProfile.Profile | None) -> None:
    args, n = run.args, len(run.traffic.records)
    wanted = set(args.variants)
    raw: Result | None = None
    if "raw" in wanted or "decode" in wanted:
        say(f"raw aiokafka read of {n:,} records, best of 2 (the first also warms the broker's caches)")
        seconds = min([await read_raw(run, run.topic, n) for _ in range(2)])
        raw = Result("raw aiokafka read (baseline)", n, None, seconds, run.topic, "best of 2")
        run.results.append(raw)
    if "decode" in wanted:
        say("read + decode + schema validation (no database), best of 2 like the baseline")
        decoder = new_processor(run, "bench-decode", "postgresql://unused")
        await decoder.schemas.preload([("TaskCompleted", 0), ("TaskFailed", 0)])  # as a worker's first batch does
        seconds = min([await read_raw(run, run.topic, n, decode=decoder) for _ in range(2)])
        run.results.append(Result("read + decode + validate", n, None, seconds, run.topic,
                                  "CPU cost, no DB; best of 2"))
    if "processor" in wanted:
        group, url = f"bench-{run.tag}-processor", await new_database(run, "processor")
        say(f"BatchProcessor fed by aiokafka, batches of up to {args.batch_max}")
        seconds, processor = await run_processor(run, run.topic, n, group, url, args.batch_max, profile)
        run.results.append(Result(f"processor, batches <= {args.batch_max}", n, n, seconds, run.topic,
                                  batch_note(processor_samples(processor), seconds)))
        await verify(run, "processor", url, group, run.topic, n)
    if "faust-noop" in wanted:
        say("Faust worker process around a processor that applies nothing (the framework's own cost)")
        w = await run_worker(launch(run, "faust-noop", run.server_url), n, say, noop=True)
        run.results.append(Result("Faust worker, no-op processor", n - w.first_count, None, w.steady_seconds,
                                  run.topic, notes(batch_note(w.steady_metrics, w.steady_seconds),
                                                   w.cpu_note(n - w.first_count))))
    if "worker" in wanted:
        group, url = f"bench-{run.tag}-worker", await new_database(run, "worker")
        say("Faust worker process (eventbus.consumer.main.serve + bonus handlers)")
        w = await run_worker(launch(run, "worker", url), n, say)
        run.results.append(Result("Faust worker, first commit -> done", n - w.first_count, n - w.first_count,
                                  w.steady_seconds, run.topic, notes(batch_note(w.steady_metrics, w.steady_seconds),
                                                                     w.cpu_note(n - w.first_count))))
        run.results.append(Result("Faust worker, spawn -> done", n, n, w.total_seconds, run.topic,
                                  "incl. start + group join"))
        dead = w.metrics.get("consumer_dead_lettered_total", 0.0)
        run.check("worker: its metrics count no dead letters", dead == 0, f"{dead:.0f}")
        await verify(run, "worker", url, group, run.topic, n)
    if "per-event" in wanted and args.per_event_sample > 0:
        sample = min(args.per_event_sample, n)
        group, url = f"bench-{run.tag}-per-event", await new_database(run, "per_event")
        say(f"BatchProcessor one event per transaction, first {sample:,} records")
        seconds, _ = await run_processor(run, run.topic, sample, group, url, 1)
        run.results.append(Result("processor, 1 event per txn", sample, sample, seconds, run.topic, "sample"))
        await verify_sample(run, url, group, sample)
    if "duplicates" in wanted and run.dup_records:
        await bench_duplicates(run)


async def verify_sample(run: Run, url: str, group: str, sample: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetchval("SELECT count(DISTINCT (task_id, outcome)) FROM ledger")
        processed = await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1", group)
    finally:
        await conn.close()
    run.check("per-event: ledger rows == processed_events == sample", rows == processed == sample,
              f"{rows:,} / {processed:,}")


async def bench_duplicates(run: Run) -> None:
    records, n = len(run.dup_records), len(run.traffic.records)
    say(f"duplicates: raw read of {records:,} records ({records - n:,} redelivered)")
    seconds = min([await read_raw(run, run.dup_topic, records) for _ in range(2)])
    run.results.append(Result("dups: raw aiokafka read", records, None, seconds, run.dup_topic, "best of 2"))
    group, url = f"bench-{run.tag}-duplicates", await new_database(run, "duplicates")
    say("duplicates: BatchProcessor")
    seconds, processor = await run_processor(run, run.dup_topic, records, group, url, run.args.batch_max)
    skipped = int(processor.metrics.duplicates._value.get())
    run.results.append(Result("dups: processor", records, n, seconds, run.dup_topic, f"{skipped:,} skipped"))
    run.check("duplicates: every redelivery skipped and counted", skipped == records - n,
              f"consumer_duplicates={skipped:,} redelivered={records - n:,}")
    await verify(run, "duplicates", url, group, run.dup_topic, n)


# -- output -------------------------------------------------------------------------------------
def table(run: Run) -> str:
    raw_rate = {r.topic: r.records_per_s for r in run.results if r.applied is None and "raw" in r.name}
    per_event = next((r.applied_per_s for r in run.results if "1 event per txn" in r.name), None)
    header = (f"{'variant':<36} {'records':>9} {'applied':>9} {'seconds':>8} {'records/s':>10} {'applied/s':>10} "
              f"{'vs raw':>7} {'vs 1/txn':>8}  note")
    lines = [header, "-" * len(header)]
    for r in run.results:
        applied = r.applied_per_s
        vs_raw = (applied or r.records_per_s) / raw_rate[r.topic] if raw_rate.get(r.topic) else None
        vs_txn = applied / per_event if applied and per_event else None
        lines.append(
            f"{r.name:<36} {r.records:>9,} {'-' if r.applied is None else f'{r.applied:,}':>9} {r.seconds:>8.2f} "
            f"{r.records_per_s:>10,.0f} {'-' if applied is None else f'{applied:,.0f}':>10} "
            f"{'-' if vs_raw is None else f'{vs_raw:.3f}':>7} {'-' if vs_txn is None else f'{vs_txn:.1f}x':>8}"
            f"  {r.note}")
    lines.append("vs raw: applied/s (records/s where nothing is applied) / raw aiokafka records/s on the same topic; "
                 "vs 1/txn: applied/s / the one-transaction-per-event rate")
    processor = next((r for r in run.results if r.name.startswith("processor, batches")), None)
    worker = next((r for r in run.results if r.name.startswith("Faust worker, first commit")), None)
    noop = next((r for r in run.results if r.name.startswith("Faust worker, no-op")), None)
    if worker is not None and worker.applied_per_s:
        if processor is not None and processor.applied_per_s:
            lines.append(f"worker / processor: {worker.applied_per_s / processor.applied_per_s:.2f}")
        if noop is not None and noop.records_per_s:
            lines.append(f"worker / Faust with a no-op processor: {worker.applied_per_s / noop.records_per_s:.2f}")
        elif noop is not None:  # every record came in the first look after the join: no steady phase to time
            lines.append("worker / Faust with a no-op processor: n/a (the no-op worker read every record before its "
                         "first look; too few records for a steady rate: run without --quick or with more events)")
    lines.append("")
    for r in run.results:
        if r.applied_per_s is not None and "1 event per txn" not in r.name and "spawn" not in r.name:
            verdict = "meets" if r.applied_per_s >= GOAL else "BELOW"
            lines.append(f"goal >= {GOAL:,} applied/s: {r.name}: {r.applied_per_s:,.0f}/s {verdict}")
    lines.append(correctness_line(run.checks))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.consumer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=50_000, help="result events to pre-produce (default 50000)")
    p.add_argument("--managers", type=int, default=500, help="managers that created the tasks (default 500)")
    p.add_argument("--failed-share", type=float, default=0.2, help="share of TaskFailed events (default 0.2)")
    p.add_argument("--duplicates", type=float, default=0.1,
                   help="redelivered share for the duplicate-heavy variant (default 0.1; 0 skips it)")
    p.add_argument("--partitions", type=int, default=TASK_RESULTS.partitions, help="partitions of the topics")
    p.add_argument("--batch-max", type=int, default=WorkerSettings().consumer_batch_max,
                   help="records per processor batch, as CONSUMER_BATCH_MAX for the worker (default %(default)s)")
    p.add_argument("--per-event-sample", type=int, default=2000,
                   help="records for the one-transaction-per-event reference (default 2000; 0 skips it)")
    p.add_argument("--variants", type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                   default=list(VARIANTS), help=f"comma-separated subset of {','.join(VARIANTS)} (default all)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds any one phase may take (default 600)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the traffic (default 1)")
    p.add_argument("--profile", action="store_true",
                   help="cProfile the processor variant and the worker process (its main thread); print the top "
                        "functions and save the stats")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory and bench databases")
    p.add_argument("--quick", action="store_true",
                   help="every variant and check on small inputs, in seconds: " + ", ".join(
                       f"--{k.replace('_', '-')} {v:g}" for k, v in QUICK.items()) + " (explicit options win)")
    args = p.parse_args(argv)
    if args.quick:
        p.set_defaults(**QUICK)
        args = p.parse_args(argv)
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants: {', '.join(sorted(unknown))}")
    if args.events <= 0 or args.managers <= 0 or not 0 <= args.duplicates <= 1 or args.batch_max <= 0:
        p.error("--events, --managers and --batch-max must be positive, --duplicates within 0..1")
    return args


async def bonus_handlers(url: str) -> list[Handler]:
    """The bonus worker's handlers as its plan builds them, on the switches and schema of the template database
    (every bench database is a copy). Hiring is never asked: ratings come from events."""
    control = Control(url, name="bench-consumer", role="bench", specs=FLAGS)
    conn = await asyncpg.connect(url)
    try:
        await control.tick(conn)
    finally:
        await conn.close()
    return BonusConsumers(control.switches, control.schema, RULE, Link("hiring", "http://127.0.0.1:9")).handlers()


async def prepare(run: Run) -> None:
    args = run.args
    await ensure_topics(run.bootstrap, [TopicSpec(run.topic, args.partitions), TopicSpec(run.dup_topic,
                                                                                         args.partitions)])
    template = f"bench_{run.tag}_template"
    say(f"migrating {template} to {REVISION} and seeding {len(run.traffic.tasks):,} tasks, "
        f"{len(run.traffic.ratings):,} ratings; " + ", ".join(f"{k}={v}" for k, v in SWITCHES.items()))
    url = await asyncio.to_thread(upgrade, "bonus", run.server_url, REVISION, database=template)
    await seed_database(plain_url(url), run.traffic)
    run.handlers = await bonus_handlers(plain_url(url))
    n = len(run.traffic.records)

    def progress(total: int) -> Callable[[int], None]:
        def show(sent: int) -> None:
            if sent % 25_000 == 0 or sent == total:
                say(f"    produced {sent:,}/{total:,}")
        return show

    say(f"producing {n:,} events to {run.topic} ({args.partitions} partitions)")
    seconds = await produce(run.bootstrap, run.topic, run.traffic.records, progress(n))
    say(f"    {n / seconds:,.0f} records/s")
    if run.dup_records and "duplicates" in args.variants:
        total = len(run.dup_records)
        say(f"producing {total:,} records ({total - n:,} redeliveries) to {run.dup_topic}")
        await produce(run.bootstrap, run.dup_topic, run.dup_records, progress(total))


async def amain(run: Run) -> None:
    profile = cProfile.Profile() if run.args.profile else None
    try:
        await prepare(run)
        await bench(run, profile)
    finally:
        if os.environ.get("DATABASE_URL") and not run.args.keep:  # an embedded server goes with the workdir
            await drop_databases(run.server_url, [*run.databases, f"bench_{run.tag}_template"])
    if profile is not None:
        profile.dump_stats(run.workdir / "processor.prof")
        for name in ("processor.prof", "worker.prof"):
            path = run.workdir / name
            if path.exists():
                out = io.StringIO()
                pstats.Stats(str(path), stream=out).sort_stats("tottime").print_stats(30)
                say(f"profile {path} (kept with --keep), by own time:\n{out.getvalue()}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-consumer-"))
    rng = random.Random(args.seed)
    tag = uuid.uuid4().hex[:8]
    say(f"generating {args.events:,} events for {args.managers:,} managers (workdir {workdir})")
    traffic = make_traffic(args.events, args.managers, args.failed_share, rng)
    dup_records = with_redeliveries(traffic.records, args.duplicates, rng) if args.duplicates > 0 else []
    # the generated traffic is the harness's, not a consumer's: keep the collector from re-scanning it for every
    # in-process variant (measured: its full collections added ~2 us a record to read + decode)
    gc.freeze()
    try:
        with stack(workdir) as (server_url, bootstrap):
            run = Run(args, server_url, bootstrap, workdir, tag, f"bench.{tag}.{TASK_RESULTS.name}",
                      f"bench.{tag}.{TASK_RESULTS.name}.redelivered", traffic, dup_records)
            asyncio.run(amain(run))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(f"bench-consumer{' --quick' if args.quick else ''}: {args.events:,} bonus result events, "
          f"{args.partitions} partitions, batch max {args.batch_max}, {os.cpu_count()} CPUs")
    print(table(run))
    return 0 if all(ok for _, ok, _ in run.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
