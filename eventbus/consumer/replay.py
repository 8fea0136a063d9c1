"""`python -m eventbus.consumer.replay`: list, inspect and replay dead-lettered records.

  list    DLQ records of a consumer group, grouped by error category and class, with counts
  show    one record (topic partition offset) with its key, value and every header
  replay  send selected records back to their original topic (or an allowed target)

Replays send the original key, value and headers (so the `event_id`, and with it dedupe, holds),
with `dlq.replay.count` incremented. A record already replayed `--max-replays` times goes to the
parking topic (`parking.<group>.<topic>`) instead: a poison message cannot loop forever. A DLQ record
that an earlier replay already sent is skipped unless `--again`. Every replay, dry runs included,
is recorded in the group's database (`dlq_replays`, one row per run; `dlq_replayed_records`, one row
per record and what was done with it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from eventbus.consumer.dlq import (
    H_CATEGORY,
    H_CLASS,
    H_FAILED_AT,
    H_GROUP,
    H_MESSAGE,
    H_ORIGINAL_PARTITION,
    H_ORIGINAL_TOPIC,
    H_REPLAY_COUNT,
    PREFIX,
    parking_topic,
)
from eventbus.consumer.messages import RawMessage
from eventbus.db import database_url_for, plain_url
from eventbus.envelope import H_EVENT_ID, header_value
from eventbus.settings import CommonSettings
from eventbus.topics import partitions_of

DEFAULT_MAX_REPLAYS = 3
H_REPLAY_ID = "dlq.replay.id"
DRY_ACTIONS = {"replayed": "would-replay", "parked": "would-park", "refused": "would-refuse"}


class ReplayError(Exception):
    """A problem the operator can fix; the message says how."""


# -- reading DLQ topics ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DlqRecord(RawMessage):
    """A record read from a DLQ topic, with what its `dlq.*` headers say."""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def ref(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    @property
    def category(self) -> str:
        return self.header(H_CATEGORY) or "?"

    @property
    def error_class(self) -> str:
        return self.header(H_CLASS) or "?"

    @property
    def original_topic(self) -> str | None:
        return self.header(H_ORIGINAL_TOPIC)

    @property
    def replay_count(self) -> int:
        try:
            return int(self.header(H_REPLAY_COUNT) or 0)
        except ValueError:
            return 0

    @property
    def failed_at(self) -> datetime | None:
        text = self.header(H_FAILED_AT)
        if text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                pass
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC) if self.timestamp_ms else None

    @property
    def event_id(self) -> str | None:
        found = self.header(H_EVENT_ID)
        if found:
            return found
        try:
            doc = json.loads(self.value or b"")
            return str(doc["meta"]["event_id"])
        except (ValueError, TypeError, KeyError):
            return None


def dlq_prefix(group: str | None) -> str:
    return f"dlq.{group}." if group else "dlq."


async def dlq_topics(bootstrap: str, group: str | None, source_topic: str | None = None) -> list[str]:
    """The DLQ topics of `group` (all groups when None), optionally only the one for `source_topic`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    await _start(consumer, bootstrap)
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(dlq_prefix(group)))
    finally:
        await consumer.stop()
    if source_topic:
        topics = [t for t in topics if t.endswith("." + source_topic)]
    return topics


async def read_records(bootstrap: str, topics: Sequence[str], progress: TextIO | None = None,
                       timeout: float = 60.0) -> list[DlqRecord]:
    """Every record of `topics` from the beginning up to their ends at the time of the call, in
    (topic, partition, offset) order."""
    if not topics:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000,
                                fetch_max_wait_ms=100)
    await _start(consumer, bootstrap)
    try:
        partitions: list[TopicPartition] = []
        for topic in topics:
            try:
                parts = await partitions_of(consumer, topic, attempts=5)
            except LookupError:
                raise ReplayError(f"no topic {topic} on {bootstrap}; `dlq-list` shows the DLQ topics") from None
            partitions += [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        todo = {tp for tp in partitions if ends[tp] > starts[tp]}
        total = sum(ends[tp] - starts[tp] for tp in todo)
        records: list[DlqRecord] = []
        bar = Progress("reading", total, progress)
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                positions = {tp: await consumer.position(tp) for tp in sorted(todo)}
                behind = ", ".join(f"{tp.topic}[{tp.partition}] at {at} of {ends[tp]}" for tp, at in positions.items())
                raise ReplayError(f"could not read to the end in {timeout:.0f} s: {behind}; is the broker healthy?")
            batch = await consumer.getmany(*todo, timeout_ms=1000)
            for tp, recs in batch.items():
                # Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, short of the
                # log's end when that batch holds several records; a fetch's high watermark is right.
                ends[tp] = max(ends[tp], consumer.highwater(tp) or 0)
                for r in recs:
                    if r.offset < ends[tp]:
                        records.append(DlqRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value,
                                                 list(r.headers or [])))
                bar.update(len(records))
            for tp in list(todo):
                if tp in batch and await consumer.position(tp) >= ends[tp]:
                    todo.discard(tp)
        bar.done()
        return sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
    finally:
        await consumer.stop()


async def _start(client: AIOKafkaConsumer | AIOKafkaProducer, bootstrap: str) -> None:
    try:
        await asyncio.wait_for(client.start(), 15)
    except (KafkaError, OSError, TimeoutError) as exc:
        await client.stop()
        raise ReplayError(f"cannot reach the broker at {bootstrap} ({exc!r}); is the stack running? "
                          "(`make run`, or set KAFKA_BOOTSTRAP_SERVERS / pass --bootstrap)") from exc


# -- selection ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    keys: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    error_classes: frozenset[str] = frozenset()

    def matches(self, record: DlqRecord) -> bool:
        failed = record.failed_at
        if self.since and (failed is None or failed < self.since):
            return False
        if self.until and (failed is None or failed > self.until):
            return False
        if self.keys and (record.key or b"").decode("utf-8", "replace") not in self.keys:
            return False
        if self.event_ids and record.event_id not in self.event_ids:
            return False
        if self.categories and record.category not in self.categories:
            return False
        return not (self.error_classes and not any(
            record.error_class == c or record.error_class.endswith("." + c) for c in self.error_classes))

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else sorted(v)) for k, v in vars(self).items()
                if v}


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2026-11-23T10:00:00Z`, naive = UTC) or a duration ago (`90s`, `30m`, `2h`, `7d`)."""
    match = _RELATIVE.match(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write ISO 8601 (2026-11-23T10:00:00Z) or a duration ago (30m, 2h, 7d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- replay ---------------------------------------------------------------------------------------------------
@dataclass
class ReplaySummary:
    replay_id: int | None
    dry_run: bool
    scanned: int = 0
    selected: int = 0
    replayed: int = 0
    parked: int = 0
    refused: int = 0
    skipped: int = 0
    result: str = "running"
    actions: list[tuple[DlqRecord, str, str | None]] = field(default_factory=list)

    def line(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        return (f"replay {self.replay_id}: {self.result}: scanned {self.scanned}, selected {self.selected}, "
                f"{verb} {self.replayed}, parked {self.parked}, refused {self.refused}, "
                f"skipped (already replayed) {self.skipped}")


@dataclass(frozen=True)
class ReplayOptions:
    group: str
    filters: Filters = Filters()
    source_topic: str | None = None
    target: str | None = None
    allow: frozenset[str] = frozenset()
    dry_run: bool = False
    limit: int | None = None
    rate: float | None = None
    max_replays: int = DEFAULT_MAX_REPLAYS
    again: bool = False
    operator: str = "unknown"


class ReplayLog:
    """`dlq_replays` / `dlq_replayed_records` in the consumer group's database."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, dsn: str) -> ReplayLog:
        try:
            conn = await asyncpg.connect(plain_url(dsn), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ReplayError(f"cannot reach the replay log database {_redact(dsn)} ({exc!r}); is the stack "
                              "running? (`make run`, or set DATABASE_URL / pass --database)") from exc
        return cls(conn)

    async def start(self, options: ReplayOptions, dlq_topics: Sequence[str]) -> int:
        return int(await self.conn.fetchval(
            "INSERT INTO dlq_replays (operator, dlq_topic, filters, dry_run) VALUES ($1, $2, $3, $4) RETURNING id",
            options.operator, ",".join(dlq_topics),
            json.dumps({**options.filters.as_dict(), "source_topic": options.source_topic, "target": options.target,
                        "allow": sorted(options.allow), "limit": options.limit, "rate": options.rate,
                        "max_replays": options.max_replays, "again": options.again}),
            options.dry_run))

    async def already_replayed(self, records: Iterable[DlqRecord]) -> set[tuple[str, int, int]]:
        refs = list(records)
        if not refs:
            return set()
        rows = await self.conn.fetch(
            """SELECT r.dlq_topic, r.dlq_partition, r.dlq_offset FROM dlq_replayed_records r
               JOIN dlq_replays p ON p.id = r.replay_id
               JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS s(t, p, o)
                 ON r.dlq_topic = s.t AND r.dlq_partition = s.p AND r.dlq_offset = s.o
               WHERE NOT p.dry_run AND r.action IN ('replayed', 'parked')""",
            [r.topic for r in refs], [r.partition for r in refs], [r.offset for r in refs])
        return {(row[0], row[1], row[2]) for row in rows}

    async def record(self, replay_id: int, record: DlqRecord, action: str, target: str | None) -> None:
        await self.conn.execute(
            """INSERT INTO dlq_replayed_records (replay_id, dlq_topic, dlq_partition, dlq_offset, event_id, action,
               target_topic) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            replay_id, record.topic, record.partition, record.offset, record.event_id, action, target)

    async def finish(self, summary: ReplaySummary) -> None:
        assert summary.replay_id is not None
        await self.conn.execute(
            """UPDATE dlq_replays SET finished_at = now(), selected = $2, replayed = $3, parked = $4, refused = $5,
               result = $6 WHERE id = $1""",
            summary.replay_id, summary.selected, summary.replayed, summary.parked, summary.refused, summary.result)

    async def close(self) -> None:
        await self.conn.close()


def replay_headers(record: DlqRecord, replay_id: int) -> list[tuple[str, bytes]]:
    """The original headers (no `dlq.*`), with the replay count incremented and the replay's id."""
    kept = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    return [*kept, (H_REPLAY_COUNT, str(record.replay_count + 1).encode()), (H_REPLAY_ID, str(replay_id).encode())]


def decide(record: DlqRecord, options: ReplayOptions) -> tuple[str, str | None, str]:
    """(action, target topic, why) for one selected record."""
    original = record.original_topic
    if original is None:
        return "refused", None, f"no {H_ORIGINAL_TOPIC} header: not a DLQ record of this runtime"
    group = record.header(H_GROUP) or options.group
    if record.replay_count >= options.max_replays:
        return "parked", parking_topic(group, original), f"replayed {record.replay_count} times already"
    target = options.target or original
    allowed = options.allow | {original}
    if target not in allowed:
        return "refused", target, f"target {target} is not allowed (allowed: {', '.join(sorted(allowed))}; " \
                                  "add it with --allow-topic)"
    return "replayed", target, ""


async def replay(bootstrap: str, dsn: str, options: ReplayOptions, out: TextIO | None = sys.stderr) -> ReplaySummary:
    topics = await dlq_topics(bootstrap, options.group, options.source_topic)
    if not topics:
        raise ReplayError(f"no DLQ topics for group {options.group!r}"
                          + (f" and topic {options.source_topic!r}" if options.source_topic else "")
                          + f" on {bootstrap}; `dlq-list` shows what exists")
    log = await ReplayLog.connect(dsn)
    summary = ReplaySummary(None, options.dry_run)
    producer: AIOKafkaProducer | None = None
    try:
        summary.replay_id = await log.start(options, topics)
        records = await read_records(bootstrap, topics, out)
        summary.scanned = len(records)
        selected = [r for r in records if options.filters.matches(r)]
        done = set() if options.again else await log.already_replayed(selected)
        todo = []
        for r in selected:
            if (r.topic, r.partition, r.offset) in done:
                summary.skipped += 1
            else:
                todo.append(r)
        if options.limit is not None:
            todo = todo[: options.limit]
        summary.selected = len(todo)
        if not options.dry_run and todo:
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", client_id="dlq-replay",
                                        request_timeout_ms=10_000, max_request_size=2_000_000)
            await _start(producer, bootstrap)
        bar = Progress("dry run" if options.dry_run else "replaying", len(todo), out)
        pacer = Pacer(options.rate)
        for i, record in enumerate(todo):
            action, target, why = decide(record, options)
            if producer is not None and action in ("replayed", "parked") and target is not None:
                await pacer.wait()
                headers = (replay_headers(record, summary.replay_id) if action == "replayed"
                           else list(record.headers))
                await producer.send_and_wait(target, key=record.key, value=record.value, headers=headers,
                                             partition=_partition(record, target))
            await log.record(summary.replay_id, record, DRY_ACTIONS[action] if options.dry_run else action, target)
            summary.actions.append((record, action, f"{target} ({why})" if why and target else why or target))
            setattr(summary, action, getattr(summary, action) + 1)
            verb = "would replay" if options.dry_run else "replayed"
            bar.update(i + 1, f"{verb} {summary.replayed} parked {summary.parked} refused {summary.refused}")
        bar.done()
        summary.result = "dry-run" if options.dry_run else ("ok" if not summary.refused else "partial")
    except (asyncio.CancelledError, KeyboardInterrupt):
        summary.result = "interrupted"
        raise
    except Exception as exc:
        summary.result = f"failed: {exc!r}"[:500]
        raise
    finally:
        if producer is not None:
            await producer.stop()
        if summary.replay_id is not None:
            await log.finish(summary)
        await log.close()
    return summary


def _partition(record: DlqRecord, target: str) -> int | None:
    """Back to the partition it came from (its key's partition) when it goes home; else by key."""
    if target == record.original_topic:
        original = record.header(H_ORIGINAL_PARTITION)
        if original is not None and original.isdigit():
            return int(original)
    return None


# -- progress and pacing --------------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on a terminal; a line every 10% otherwise."""

    def __init__(self, label: str, total: int, out: TextIO | None) -> None:
        self.label, self.total, self.out = label, total, out
        self.tty = bool(out is not None and out.isatty())
        self._last_decile = -1
        self._started = time.monotonic()

    def update(self, n: int, extra: str = "") -> None:
        if self.out is None or self.total == 0:
            return
        fraction = min(1.0, n / self.total)
        if self.tty:
            filled = int(fraction * 30)
            self.out.write(f"\r{self.label:<10} [{'#' * filled}{'.' * (30 - filled)}] {n}/{self.total} {extra}  ")
            self.out.flush()
        elif int(fraction * 10) > self._last_decile:
            self._last_decile = int(fraction * 10)
            self.out.write(f"{self.label}: {n}/{self.total} ({fraction:.0%}) {extra}\n")

    def done(self) -> None:
        if self.out is not None and self.tty and self.total:
            self.out.write(f" {time.monotonic() - self._started:.1f}s\n")


class Pacer:
    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval


# -- list / show ----------------------------------------------------------------------------------------------
def group_lines(records: Sequence[DlqRecord]) -> list[str]:
    if not records:
        return ["no dead-lettered records"]
    counts: Counter[tuple[str, str, str]] = Counter((r.topic, r.category, r.error_class) for r in records)
    lines = [f"{'DLQ topic':<36} {'category':<14} {'error class':<42} {'count':>5}  first failed / last failed"]
    for (topic, category, error_class), count in sorted(counts.items()):
        matching = [r for r in records if (r.topic, r.category, r.error_class) == (topic, category, error_class)]
        times = sorted(t for t in (r.failed_at for r in matching) if t is not None)
        span = f"{_ts(times[0])} / {_ts(times[-1])}" if times else "-"
        lines.append(f"{topic:<36} {category:<14} {error_class:<42} {count:>5}  {span}")
        sample = matching[-1]
        lines.append(f"    e.g. {sample.ref} key={_text(sample.key)} event_id={sample.event_id or '-'}: "
                     f"{(sample.header(H_MESSAGE) or '')[:150]}")
    lines.append(f"{len(records)} record(s)")
    return lines


def show_lines(record: DlqRecord) -> list[str]:
    stamp = _ts(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)) if record.timestamp_ms else "-"
    lines = [f"record     {record.ref}",
             f"timestamp  {stamp}",
             f"key        {_text(record.key)}", "headers"]
    lines += [f"  {k}: {v.decode('utf-8', 'replace')}" for k, v in record.headers]
    lines.append("value")
    try:
        lines += ["  " + line for line in json.dumps(json.loads(record.value or b""), indent=2).splitlines()]
    except ValueError:
        lines.append(f"  (not JSON) {record.value!r}"[:2000])
    return lines


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _text(value: bytes | None) -> str:
    return "-" if value is None else value.decode("utf-8", "replace")


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


# -- command line ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eventbus.consumer.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    settings = CommonSettings()
    parser.add_argument("--bootstrap", default=settings.kafka_bootstrap_servers,
                        help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS; default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="DLQ records grouped by category and error class")
    p_list.add_argument("--group", help="consumer group (default: every group)")
    p_list.add_argument("--topic", help="only the DLQ of this source topic, e.g. hiring.task-results")
    _add_filters(p_list)

    p_show = sub.add_parser("show", help="one record with all its headers")
    p_show.add_argument("dlq_topic", help="e.g. dlq.bonus.hiring.task-results")
    p_show.add_argument("partition", type=int)
    p_show.add_argument("offset", type=int)

    p_replay = sub.add_parser("replay", help="send selected records back (see the filters)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_replay.add_argument("--group", required=True, help="consumer group whose DLQ to replay, e.g. bonus")
    p_replay.add_argument("--topic", help="only the DLQ of this source topic")
    _add_filters(p_replay)
    p_replay.add_argument("--dry-run", action="store_true", help="show what would be done; send nothing")
    p_replay.add_argument("--limit", type=int, help="replay at most this many records")
    p_replay.add_argument("--rate", type=float, help="at most this many records per second")
    p_replay.add_argument("--target", help="send to this topic instead of the original (must be allowed)")
    p_replay.add_argument("--allow-topic", action="append", default=[], metavar="TOPIC",
                          help="also allow this target (the original topic is always allowed); repeatable")
    p_replay.add_argument("--max-replays", type=int, default=DEFAULT_MAX_REPLAYS,
                          help="a record replayed this many times goes to the parking topic instead")
    p_replay.add_argument("--again", action="store_true",
                          help="also replay records an earlier replay already sent (dedupe keeps the effect once)")
    p_replay.add_argument("--database", help="the group's database URL for the replay log (default: the group's "
                                             "database on DATABASE_URL's server)")
    p_replay.add_argument("--operator", default=os.environ.get("USER") or _user(), help="recorded in dlq_replays")
    return parser


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="since", type=parse_time, help="failed at or after (ISO 8601, or 30m / 2h / 7d ago)")
    p.add_argument("--to", dest="until", type=parse_time, help="failed at or before")
    p.add_argument("--key", action="append", default=[], help="record key; repeatable")
    p.add_argument("--event-id", action="append", default=[], help="event id; repeatable")
    p.add_argument("--category", action="append", default=[], choices=["non-retriable", "retriable", "unknown"])
    p.add_argument("--error-class", action="append", default=[],
                   help="full or short class name, e.g. SchemaInvalid; repeatable")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _filters(args: argparse.Namespace) -> Filters:
    for event_id in args.event_id:
        try:
            uuid.UUID(event_id)
        except ValueError:
            raise ReplayError(f"--event-id {event_id!r} is not a UUID") from None
    return Filters(args.since, args.until, frozenset(args.key), frozenset(args.event_id), frozenset(args.category),
                   frozenset(args.error_class))


async def _main(args: argparse.Namespace) -> int:
    if args.command == "show":
        records = await read_records(args.bootstrap, [args.dlq_topic])
        found = [r for r in records if (r.partition, r.offset) == (args.partition, args.offset)]
        if not found:
            raise ReplayError(f"no record at {args.dlq_topic}[{args.partition}]@{args.offset}; `dlq-list` shows "
                              "where records are")
        print("\n".join(show_lines(found[0])))
        return 0
    filters = _filters(args)
    if args.command == "list":
        topics = await dlq_topics(args.bootstrap, args.group, args.topic)
        records = [r for r in await read_records(args.bootstrap, topics, sys.stderr) if filters.matches(r)]
        print(f"DLQ topics: {', '.join(topics) or 'none'}")
        print("\n".join(group_lines(records)))
        return 0
    dsn = args.database or database_url_for(CommonSettings().database_url, args.group)
    options = ReplayOptions(group=args.group, filters=filters, source_topic=args.topic, target=args.target,
                            allow=frozenset(args.allow_topic), dry_run=args.dry_run, limit=args.limit,
                            rate=args.rate, max_replays=args.max_replays, again=args.again, operator=args.operator)
    summary = await replay(args.bootstrap, dsn, options)
    for record, action, detail in summary.actions:
        shown = DRY_ACTIONS[action].replace("-", " ") if options.dry_run else action
        print(f"  {record.ref} event_id={record.event_id or '-'} {record.error_class}: {shown} -> {detail}")
    print(summary.line())
    return 0 if summary.result in ("ok", "dry-run") else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args))
    except ReplayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was sent before is recorded in dlq_replays", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
