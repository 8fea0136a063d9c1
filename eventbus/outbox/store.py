"""The relay's SQL against the outbox tables (asyncpg: the relay needs LISTEN and raw speed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

_FETCH = """
SELECT id, topic, message_key, key_hash, value, headers
FROM outbox
WHERE published_at IS NULL AND lease_partition = ANY($1::smallint[]) AND id <> ALL($3::bigint[])
  AND topic <> ALL($4::text[])
ORDER BY id
LIMIT $2
"""
_MARK = "UPDATE outbox SET published_at = clock_timestamp() WHERE id = ANY($1::bigint[]) AND published_at IS NULL"
_CLEAN = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox
    WHERE published_at IS NOT NULL AND published_at < clock_timestamp() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
"""
_BACKLOG = """
SELECT count(*) AS backlog,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS oldest_age
FROM outbox WHERE published_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    topic: str
    key: bytes
    key_hash: int
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Backlog:
    size: int
    oldest_age: float


def _row(record: asyncpg.Record) -> OutboxRow:
    id_, topic, key, key_hash, value, headers = record
    return OutboxRow(id_, topic, key.encode(), key_hash, value, [(k, v.encode()) for k, v in orjson.loads(headers)])


async def fetch_unpublished(pool: asyncpg.Pool, partitions: list[int], limit: int,
                            exclude: list[int] | None = None, paused_topics: list[str] | None = None
                            ) -> list[OutboxRow]:
    """The oldest unpublished rows of the lease partitions, in id order, but for `exclude` (being marked) and
    the rows of paused topics (they wait, in order, until the pause ends).

    No cursor: a row that commits late with a lower id is simply found by the next fetch."""
    records = await pool.fetch(_FETCH, partitions, limit, exclude or [], paused_topics or [])
    return [_row(r) for r in records]


async def mark_published(pool: asyncpg.Pool, ids: list[int]) -> None:
    await pool.execute(_MARK, ids)


async def delete_published(pool: asyncpg.Pool, older_than_s: float, batch: int) -> int:
    status: str = await pool.execute(_CLEAN, older_than_s, batch)
    return int(status.split()[-1])


async def vacuum(pool: asyncpg.Pool) -> None:
    """Make the space of deleted rows reusable (plain VACUUM: no exclusive lock, inserts and marks go on)."""
    await pool.execute("VACUUM outbox", timeout=600)


async def backlog(pool: asyncpg.Pool) -> Backlog:
    record = await pool.fetchrow(_BACKLOG)
    assert record is not None
    return Backlog(record["backlog"], record["oldest_age"])


async def status_report(conn: asyncpg.Connection, window_s: float = 60.0) -> dict[str, Any]:
    """What `outbox status` prints for one service's database."""
    stats = await conn.fetchrow(_BACKLOG)
    assert stats is not None
    published = await conn.fetchval(
        "SELECT count(*) FROM outbox WHERE published_at > clock_timestamp() - make_interval(secs => $1)", window_s)
    retained = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
    relays = await conn.fetch(
        "SELECT instance_id, extract(epoch FROM clock_timestamp() - last_seen)::float8 AS seen_ago, status "
        "FROM outbox_relays ORDER BY instance_id")
    leases = await conn.fetch(
        "SELECT owner, count(*) AS n FROM outbox_leases WHERE expires_at > clock_timestamp() GROUP BY owner")
    owned = {r["owner"]: r["n"] for r in leases}
    return {
        "backlog": stats["backlog"],
        "oldest_unpublished_age_s": round(stats["oldest_age"], 3),
        "published_last_minute": published,
        "published_per_s": round(published / window_s, 1),
        "retained_published": retained,
        "relays": [
            {"instance": r["instance_id"], "seen_ago_s": round(r["seen_ago"], 1),
             "leases": owned.get(r["instance_id"], 0), **orjson.loads(r["status"])}
            for r in relays
        ],
    }
