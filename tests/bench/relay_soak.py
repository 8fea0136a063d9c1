"""Phase 3 of `tests.bench.relay`: a long write stream with a short retention window; the outbox's rows and
size must stay bounded, retention must empty it, and (small soaks) every event is on the topic in order."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import defaultdict

import asyncpg

from eventbus.db import plain_url
from eventbus.topics import TopicSpec, ensure_topics
from tests.bench.common import say
from tests.bench.relay_common import Rows, Run, all_marked, copy_rows, empty, new_database, relay_process, stop_process
from tests.integration.outbox_helpers import COLUMNS, check_topic, read_all
from tests.waiting import eventually

SOAK_TOPIC_CHECK_MAX = 200_000  # larger soaks are not read back (memory, time)


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
            "SELECT (SELECT count(*) FROM outbox) AS n, (SELECT count(*) FROM outbox_pending) AS unpublished, "
            "pg_total_relation_size('outbox') + pg_total_relation_size('outbox_pending') "
            "+ pg_total_relation_size('outbox_published') AS size")
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
            backlog = await conn.fetchval("SELECT count(*) FROM outbox_pending")
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
