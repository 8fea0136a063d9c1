"""Idempotency: a consumer claims event ids in the same transaction as their effect."""

from __future__ import annotations

import asyncpg

_CLAIM = """
INSERT INTO processed_events (consumer, event_id)
SELECT $1, unnest($2::uuid[])
ON CONFLICT DO NOTHING
RETURNING event_id::text
"""
_FORGET = """
DELETE FROM processed_events WHERE ctid IN (
    SELECT ctid FROM processed_events
    WHERE processed_at < now() - make_interval(secs => $1)
    LIMIT $2)
"""


async def claim(conn: asyncpg.Connection, consumer: str, event_ids: list[str]) -> set[str]:
    """Insert the ids; return those not seen before, in PostgreSQL's text form (lower-case, hyphenated).
    A concurrent claimer of the same id blocks until its transaction ends,
    then the id counts as seen (committed) or fresh (rolled back)."""
    rows = await conn.fetch(_CLAIM, consumer, event_ids)
    return {r["event_id"] for r in rows}


async def forget_older_than(pool: asyncpg.Pool, retention_s: float, batch: int = 5000) -> int:
    status: str = await pool.execute(_FORGET, retention_s, batch)
    return int(status.split()[-1])
