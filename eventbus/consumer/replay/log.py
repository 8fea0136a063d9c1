"""The replay log: `dlq_replays` (one row per run) and `dlq_replayed_records` (one row per record and what
was done with it) in the consumer group's database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import asyncpg

from eventbus.consumer.replay.policy import ReplayOptions
from eventbus.consumer.replay.read import DlqRecord, ReplayError
from eventbus.db import plain_url

if TYPE_CHECKING:
    from eventbus.consumer.replay.run import ReplaySummary


class ReplayLog:
    """`dlq_replays` / `dlq_replayed_records` in the consumer group's database."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def connect(cls, dsn: str) -> ReplayLog:
        try:
            conn = await asyncpg.connect(plain_url(dsn), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ReplayError(f"cannot reach the replay log database {redact(dsn)} ({exc!r}); is the stack "
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
        return set(await self.states(records))

    async def states(self, records: Iterable[DlqRecord]) -> dict[tuple[str, int, int], str]:
        """(topic, partition, offset) -> "replayed" or "parked", the last that a replay (not a dry run) did
        with each of `records` that one did something with. A record matches a logged one at its place and with
        its event id (a broker that lost its log gives old offsets to new records); a copy read from the database
        also matches one logged where the broker had put it."""
        refs = list(records)
        if not refs:
            return {}
        rows = await self.conn.fetch(
            """SELECT DISTINCT ON (s.i) s.t, s.p, s.o, r.action
               FROM unnest($1::text[], $2::int[], $3::bigint[], $4::bigint[], $5::text[])
                    WITH ORDINALITY AS s(t, p, o, so, e, i)
               JOIN dlq_replayed_records r
                 ON r.dlq_topic = s.t AND r.dlq_partition = s.p
                AND (r.dlq_offset = s.o OR r.dlq_offset = s.so) AND r.event_id IS NOT DISTINCT FROM s.e
               JOIN dlq_replays p ON p.id = r.replay_id
               WHERE NOT p.dry_run AND r.action IN ('replayed', 'parked')
               ORDER BY s.i, r.replay_id DESC""",
            [r.topic for r in refs], [r.partition for r in refs], [r.offset for r in refs],
            [r.stored_offset for r in refs], [r.event_id for r in refs])
        return {(row[0], row[1], row[2]): row[3] for row in rows}

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


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
