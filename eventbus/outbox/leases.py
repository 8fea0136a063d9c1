"""Lease partitions: hash(key) -> one of LEASE_PARTITIONS; each is owned by one relay instance at a time.

Every live relay heartbeats into `outbox_relays`; each takes a fair share (ceil(partitions / live
relays)) of free or expired leases and gives back what it holds above its share. A lease is only
used while the local clock says it is valid with a margin (`usable_for`), measured from *before* the
renewal was sent, so a relay stops publishing before the database considers the lease expired.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from eventbus.outbox.ddl import LEASE_PARTITIONS

_UPSERT_SELF = """
INSERT INTO outbox_relays (instance_id, status) VALUES ($1, $2::jsonb)
ON CONFLICT (instance_id) DO UPDATE SET last_seen = clock_timestamp(), status = EXCLUDED.status
"""
_LIVE = "SELECT count(*) FROM outbox_relays WHERE last_seen > clock_timestamp() - make_interval(secs => $1)"
_RENEW = """
UPDATE outbox_leases SET expires_at = clock_timestamp() + make_interval(secs => $2)
WHERE owner = $1 AND expires_at > clock_timestamp()
RETURNING partition
"""
_RELEASE = """
UPDATE outbox_leases SET owner = NULL, expires_at = '-infinity'
WHERE owner = $1 AND partition = ANY($2::smallint[])
"""
_ACQUIRE = """
UPDATE outbox_leases SET owner = $1, expires_at = clock_timestamp() + make_interval(secs => $2), epoch = epoch + 1
WHERE partition IN (
    SELECT partition FROM outbox_leases
    WHERE owner IS NULL OR expires_at <= clock_timestamp()
    ORDER BY partition LIMIT $3 FOR UPDATE SKIP LOCKED)
RETURNING partition
"""
_FORGET_DEAD = "DELETE FROM outbox_relays WHERE last_seen < clock_timestamp() - interval '1 hour'"


class LeaseManager:
    def __init__(self, instance_id: str, *, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.instance_id = instance_id
        self.ttl = ttl
        self._clock = clock
        self.owned: frozenset[int] = frozenset()
        self._valid_until = 0.0
        self.live_relays = 0

    def usable_for(self) -> float:
        """Seconds the held leases may still be used for publishing."""
        return max(0.0, self._valid_until - self._clock())

    def drop_all(self) -> None:
        """Forget the leases locally (e.g. the database is unreachable and they cannot be renewed)."""
        self.owned = frozenset()
        self._valid_until = 0.0

    async def heartbeat(self, conn: asyncpg.Connection, status: dict[str, Any]) -> frozenset[int]:
        started = self._clock()
        async with conn.transaction():
            await conn.execute(_UPSERT_SELF, self.instance_id, orjson.dumps(status).decode())
            live = max(1, int(await conn.fetchval(_LIVE, self.ttl)))
            fair = math.ceil(LEASE_PARTITIONS / live)
            owned = {r["partition"] for r in await conn.fetch(_RENEW, self.instance_id, self.ttl)}
            if len(owned) > fair:
                extra = sorted(owned)[fair:]
                await conn.execute(_RELEASE, self.instance_id, extra)
                owned -= set(extra)
            elif len(owned) < fair:
                got = await conn.fetch(_ACQUIRE, self.instance_id, self.ttl, fair - len(owned))
                owned |= {r["partition"] for r in got}
            await conn.execute(_FORGET_DEAD)
        self.live_relays = live
        self.owned = frozenset(owned)
        # 0.8: stop using the lease well before the database's expiry, whatever the clock drift
        self._valid_until = started + 0.8 * self.ttl
        return self.owned

    async def release_all(self, conn: asyncpg.Connection) -> None:
        await conn.execute(_RELEASE, self.instance_id, list(self.owned))
        await conn.execute("DELETE FROM outbox_relays WHERE instance_id = $1", self.instance_id)
        self.drop_all()
