"""The relay's SQL against the outbox tables (asyncpg: the relay needs LISTEN and raw speed).

What waits for the broker is in `outbox_pending`, what it confirmed in `outbox_published` (`ddl.create_pending_v1`):
confirming a row never rewrites the outbox row itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

# The next pending ids, in id order, then their outbox rows by key. The ids are chosen first (an InitPlan run
# once), so the planner cannot join the whole outbox, which grows with the retention window, to the backlog.
_FETCH = """
SELECT id, topic, message_key, key_hash, value, headers FROM outbox
WHERE id = ANY(ARRAY(
    SELECT id FROM outbox_pending
    WHERE lease_partition = ANY($1::smallint[]) AND id <> ALL($3::bigint[]) AND topic <> ALL($4::text[])
    ORDER BY id
    LIMIT $2))
ORDER BY id
"""
# A confirmed row leaves outbox_pending for outbox_published (two narrow rows; the outbox row stays as it is).
# The mark of rows confirmed while the relay knew of losses up to $2, with the offsets the broker confirmed them
# at. A loss declared since voids the mark (the rows may sit in the lost log: they go out again with the retained
# window); an offset counted before a later loss of its partition never overwrites what that loss set.
_MARK_CONFIRMED = """
WITH current AS (SELECT NOT EXISTS (SELECT 1 FROM outbox_broker_losses WHERE id > $2) AS ok),
gone AS (
    DELETE FROM outbox_pending WHERE id = ANY($1::bigint[]) AND (SELECT ok FROM current) RETURNING id),
marked AS (
    INSERT INTO outbox_published (id) SELECT id FROM gone ON CONFLICT (id) DO NOTHING RETURNING 1),
highs AS (
    INSERT INTO outbox_broker_offsets AS b (topic, partition, high_offset, loss_id)
    SELECT t, p, o, l FROM unnest($3::text[], $4::int[], $5::bigint[], $6::bigint[]) AS h(t, p, o, l)
    WHERE (SELECT ok FROM current)
    ON CONFLICT (topic, partition) DO UPDATE
        SET high_offset = CASE WHEN b.loss_id = EXCLUDED.loss_id THEN greatest(b.high_offset, EXCLUDED.high_offset)
                               ELSE EXCLUDED.high_offset END,
            loss_id = EXCLUDED.loss_id, updated_at = clock_timestamp()
        WHERE b.loss_id <= EXCLUDED.loss_id
    RETURNING 1)
SELECT (SELECT ok FROM current), (SELECT count(*) FROM marked)
"""
# Rows published before the window, oldest first (the outbox's delete trigger removes their outbox_published rows)
_CLEAN = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox_published
    WHERE published_at < clock_timestamp() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
"""
# The oldest pending row is the lowest id (ids are taken at insert, as created_at is): no scan of the backlog
_BACKLOG = """
SELECT (SELECT count(*) FROM outbox_pending) AS backlog,
       coalesce((SELECT extract(epoch FROM clock_timestamp() - created_at) FROM outbox
                 WHERE id = (SELECT min(id) FROM outbox_pending)), 0)::float8 AS oldest_age
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


async def mark_confirmed(pool: asyncpg.Pool, ids: list[int], seen_loss: int,
                         offsets: dict[tuple[str, int], tuple[int, int]]) -> bool:
    """Mark `ids` published and record the offsets the broker confirmed ((topic, partition) -> (loss id, highest
    batch base offset)), unless a loss after `seen_loss` was declared: then nothing is marked (False)."""
    tps = list(offsets)
    record = await pool.fetchrow(_MARK_CONFIRMED, ids, seen_loss, [t for t, _ in tps], [p for _, p in tps],
                                 [offsets[tp][1] for tp in tps], [offsets[tp][0] for tp in tps])
    assert record is not None
    return bool(record[0])


# -- broker losses (eventbus.outbox.loss) ----------------------------------------------------------------------

class OutboxOutdated(RuntimeError):
    """The outbox database lacks the tables this relay publishes with."""


async def check_schema(db: asyncpg.Pool | asyncpg.Connection) -> None:
    """Raise OutboxOutdated unless the database has the tables of `ddl.create_pending_v1` (their migration comes
    after the broker-loss tables', so those are there too)."""
    if not await db.fetchval("SELECT to_regclass('outbox_pending') IS NOT NULL"):
        raise OutboxOutdated(
            "the outbox database has no outbox_pending table (Alembic branch `backbone`, revision "
            "backbone_2_outbox_pending): upgrade it with `make migrate` (it applies the backbone branch in whatever "
            "stage the database is, and nothing else); the relay publishes nothing until then, and checks again")


@dataclass(frozen=True, slots=True)
class BrokerState:
    offsets: dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (loss id, high offset)
    latest_loss: int


async def broker_state(pool: asyncpg.Pool) -> BrokerState:
    async with pool.acquire() as conn:
        rows = await conn.fetch("SELECT topic, partition, loss_id, high_offset FROM outbox_broker_offsets")
        latest = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox_broker_losses")
    return BrokerState({(r[0], r[1]): (r[2], r[3]) for r in rows}, int(latest))


_LOSS_LOCK = 0x6F75_7462_6C6F  # serializes declarations: two relays seeing one loss declare it once

#: a lost partition, as recovery matches rows to it: (topic, partition count, partition)
Lost = tuple[str, int, int]


async def declare_loss(pool: asyncpg.Pool, seen_loss: int, lost: list[Lost], highs: dict[tuple[str, int], int],
                       detected_by: str, evidence: str) -> int | None:
    """Record a loss of the `lost` partitions, whose new logs hold `highs`; None when another relay declared one
    after `seen_loss` (that one is adopted: read the state again and look once more)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOSS_LOCK)
        if await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox_broker_losses") > seen_loss:
            return None
        loss_id = int(await conn.fetchval(
            "INSERT INTO outbox_broker_losses (detected_by, evidence) VALUES ($1, $2) RETURNING id",
            detected_by, evidence))
        await conn.execute(
            "INSERT INTO outbox_broker_lost_partitions (loss_id, topic, partition_count, partition) "
            "SELECT $1, t, n, p FROM unnest($2::text[], $3::int[], $4::int[]) AS l(t, n, p) ON CONFLICT DO NOTHING",
            loss_id, [t for t, _, _ in lost], [n for _, n, _ in lost], [p for _, _, p in lost])
        tps = sorted(highs)
        await conn.execute(
            """INSERT INTO outbox_broker_offsets AS b (topic, partition, high_offset, loss_id)
               SELECT t, p, o, $1 FROM unnest($2::text[], $3::int[], $4::bigint[]) AS l(t, p, o)
               ON CONFLICT (topic, partition) DO UPDATE
                   SET high_offset = EXCLUDED.high_offset, loss_id = $1, updated_at = clock_timestamp()""",
            loss_id, [t for t, _ in tps], [p for _, p in tps], [highs[tp] for tp in tps])
    return loss_id


_UNRECOVERED = """
SELECT count(*) FROM outbox_leases
WHERE owner = $1 AND partition = ANY($2::smallint[]) AND recovered_loss < $3
"""
# Every retained published row of the owned lease partitions that went to a lost partition is made unpublished
# again, in one statement: the relay then publishes them, with what was never published, from the oldest id on.
_RECOVER = """
WITH lease AS (
    SELECT partition, recovered_loss FROM outbox_leases
    WHERE partition = ANY($1::smallint[]) AND owner = $2 AND recovered_loss < $3 AND expires_at > clock_timestamp()
    FOR UPDATE),
lost AS (
    SELECT DISTINCT lease.partition AS lease_partition, p.topic, p.partition_count, p.partition
    FROM lease JOIN outbox_broker_lost_partitions p ON p.loss_id > lease.recovered_loss AND p.loss_id <= $3),
reset AS (
    DELETE FROM outbox_published r USING outbox o, lost
    WHERE r.id = o.id AND o.lease_partition = lost.lease_partition AND o.topic = lost.topic
      AND o.key_hash % lost.partition_count = lost.partition
    RETURNING r.id, o.lease_partition, o.topic),
pending AS (
    INSERT INTO outbox_pending (id, lease_partition, topic) SELECT id, lease_partition, topic FROM reset
    ON CONFLICT (id) DO NOTHING
    RETURNING 1),
recovered AS (
    UPDATE outbox_leases l SET recovered_loss = $3 FROM lease WHERE l.partition = lease.partition
    RETURNING l.partition),
counted AS (
    UPDATE outbox_broker_losses SET republished = republished + (SELECT count(*) FROM pending) WHERE id = $3)
SELECT (SELECT count(*) FROM pending), coalesce((SELECT array_agg(partition ORDER BY partition) FROM recovered), '{}')
"""


async def unrecovered_leases(pool: asyncpg.Pool, owner: str, partitions: list[int], latest_loss: int) -> int:
    return int(await pool.fetchval(_UNRECOVERED, owner, partitions, latest_loss))


async def recover(pool: asyncpg.Pool, owner: str, partitions: list[int], latest_loss: int) -> tuple[int, list[int]]:
    """Make the rows the broker lost unpublished again in the owned lease partitions not yet recovered from the
    losses up to `latest_loss`; (rows made unpublished, lease partitions recovered)."""
    record = await pool.fetchrow(_RECOVER, partitions, owner, latest_loss)
    assert record is not None
    return int(record[0]), list(record[1])


async def delete_published(pool: asyncpg.Pool, older_than_s: float, batch: int) -> int:
    status: str = await pool.execute(_CLEAN, older_than_s, batch)
    return int(status.split()[-1])


async def vacuum(pool: asyncpg.Pool) -> None:
    """Make the space of deleted rows reusable (plain VACUUM: no exclusive lock, inserts and marks go on)."""
    await pool.execute("VACUUM outbox, outbox_pending, outbox_published", timeout=600)


async def backlog(pool: asyncpg.Pool) -> Backlog:
    record = await pool.fetchrow(_BACKLOG)
    assert record is not None
    return Backlog(record["backlog"], record["oldest_age"])


async def status_report(conn: asyncpg.Connection, window_s: float = 60.0) -> dict[str, Any]:
    """What `outbox status` prints for one service's database (OutboxOutdated: not migrated to this code)."""
    await check_schema(conn)
    stats = await conn.fetchrow(_BACKLOG)
    assert stats is not None
    published = await conn.fetchval(
        "SELECT count(*) FROM outbox_published WHERE published_at > clock_timestamp() - make_interval(secs => $1)",
        window_s)
    retained = await conn.fetchval("SELECT count(*) FROM outbox_published")
    relays = await conn.fetch(
        "SELECT instance_id, extract(epoch FROM clock_timestamp() - last_seen)::float8 AS seen_ago, status "
        "FROM outbox_relays ORDER BY instance_id")
    leases = await conn.fetch(
        "SELECT owner, count(*) AS n FROM outbox_leases WHERE expires_at > clock_timestamp() GROUP BY owner")
    owned = {r["owner"]: r["n"] for r in leases}
    last = await conn.fetchrow(
        "SELECT id, detected_at, detected_by, evidence, republished, "
        "(SELECT count(*) FROM outbox_broker_losses) AS n FROM outbox_broker_losses ORDER BY id DESC LIMIT 1")
    losses = {"count": last["n"] if last else 0,
              "last": {"id": last["id"], "detected_at": last["detected_at"].isoformat(),
                       "detected_by": last["detected_by"], "evidence": last["evidence"],
                       "republished": last["republished"]} if last else None}
    return {
        "backlog": stats["backlog"],
        "oldest_unpublished_age_s": round(stats["oldest_age"], 3),
        "published_last_minute": published,
        "published_per_s": round(published / window_s, 1),
        "retained_published": retained,
        "broker_losses": losses,
        "relays": [
            {"instance": r["instance_id"], "seen_ago_s": round(r["seen_ago"], 1),
             "leases": owned.get(r["instance_id"], 0), **orjson.loads(r["status"])}
            for r in relays
        ],
    }
