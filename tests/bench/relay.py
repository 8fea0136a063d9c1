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

This module runs the throughput phase and the driver; relay_latency and relay_soak the other phases,
relay_common what they share. Uses DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS when set, else starts embedded
PostgreSQL and Tansu on free ports in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from eventbus.db import plain_url
from eventbus.outbox.relay import Relay, RelayConfig
from eventbus.topics import TopicSpec, ensure_topics
from tests.bench.common import correctness_line, drop_databases, say, stack
from tests.bench.relay_common import Rows, Run, all_marked, copy_rows, new_database
from tests.bench.relay_latency import latency, writer_child
from tests.bench.relay_soak import soak
from tests.integration.outbox_helpers import COLUMNS, check_topic, read_all
from tests.waiting import eventually

GOAL_RATIO = 0.95  # the goal: the relay drains at least this share of what a bare producer sends
PHASES = ("throughput", "latency", "soak")
#: --quick: every phase and every check, small; speed is still reported (never judged: goals do not fail a run)
QUICK = {"events": 10_000, "keys": 100, "idle_samples": 20, "rate": 200, "steady_seconds": 2.0,
         "soak_events": 20_000, "soak_retention": 2.0, "soak_cleanup_interval": 0.5, "soak_backlog": 5000,
         "soak_chunk": 2000, "soak_sample_every": 0.5}


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
        await conn.execute("VACUUM ANALYZE outbox, outbox_pending, outbox_published")
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
    print(correctness_line([(r[1], r[3].endswith("ok"), r[2]) for r in run.rows if r[0] == "check"]))
    return 0 if run.ok else 1


if __name__ == "__main__":
    sys.exit(main())
