"""One replay run: read the group's DLQs, select, decide, send (or not, in a dry run), and log it all."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import TextIO

from aiokafka import AIOKafkaProducer

from eventbus.consumer.dlq import H_ORIGINAL_PARTITION
from eventbus.consumer.replay.log import ReplayLog
from eventbus.consumer.replay.policy import DRY_ACTIONS, NEVER, ReplayOptions, decide, replay_headers
from eventbus.consumer.replay.progress import Pacer, Progress
from eventbus.consumer.replay.read import DlqRecord, ReplayError, dlq_topics, read_records, start_client
from eventbus.consumer.replay.stored import choose, notes, stored_records


@dataclass
class ReplaySummary:
    replay_id: int | None
    dry_run: bool
    scanned: int = 0
    selected: int = 0
    replayed: int = 0
    parked: int = 0
    refused: int = 0
    #: of the refused, those no consumer can ever apply (see policy.unreplayable)
    unreplayable: int = 0
    skipped: int = 0
    result: str = "running"
    actions: list[tuple[DlqRecord, str, str | None]] = field(default_factory=list)
    #: the DLQ topics read from the group's database, and why
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        return (f"replay {self.replay_id}: {self.result}: scanned {self.scanned}, selected {self.selected}, "
                f"{verb} {self.replayed}, parked {self.parked}, refused {self.refused}"
                + (f" ({self.unreplayable} can never succeed)" if self.unreplayable else "")
                + f", skipped (already replayed) {self.skipped}")


async def replay(bootstrap: str, dsn: str, options: ReplayOptions, out: TextIO | None = sys.stderr) -> ReplaySummary:
    topics = await dlq_topics(bootstrap, options.group, options.source_topic)
    nothing = (f"no DLQ topics for group {options.group!r}"
               + (f" and topic {options.source_topic!r}" if options.source_topic else "") + f" on {bootstrap}")
    try:
        log = await ReplayLog.connect(dsn)
    except ReplayError as exc:
        if not topics:
            raise ReplayError(f"{nothing}, and the group's database (it keeps the dead letters too) cannot be "
                              f"read: {exc}") from exc
        raise
    try:
        stored = await stored_records(dsn, options.group, options.source_topic) or []
    except BaseException:
        await log.close()
        raise
    if not topics and not stored:
        await log.close()
        raise ReplayError(f"{nothing}, and no dead letters kept in its database; `dlq-list` shows what exists")
    summary = ReplaySummary(None, options.dry_run)
    producer: AIOKafkaProducer | None = None
    try:
        summary.replay_id = await log.start(options, sorted(set(topics) | {r.topic for r in stored}))
        starts: dict[tuple[str, int], int] = {}
        chosen = choose(await read_records(bootstrap, topics, out, starts=starts), stored, topics, starts,
                        from_database=options.from_database)
        summary.notes = notes(chosen, stored)
        records = chosen.records
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
            await start_client(producer, bootstrap)
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
            if why.startswith(NEVER):
                summary.unreplayable += 1
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
