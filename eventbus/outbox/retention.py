"""Retention beside the publishing loop: published rows older than the window are deleted in bounded batches,
and the table is vacuumed now and then, so that deleting never holds up a publish and the outbox's size stays
bounded. The broker-loss recovery relies on the window (the rows it keeps can be published again)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import asyncpg

from eventbus.failures import DB_UNAVAILABLE
from eventbus.outbox import store
from eventbus.outbox.config import RelayConfig
from eventbus.outbox.metrics import RelayMetrics
from eventbus.resilience import Backoff
from eventbus.resilience.retry import Sleep, forever

log = logging.getLogger(__name__)


class Retention:
    def __init__(self, config: RelayConfig, metrics: RelayMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.deleted_since_vacuum = 0

    async def run(self, pool: Callable[[], asyncpg.Pool | None], stopped: Callable[[], bool], sleep: Sleep) -> None:
        async def step() -> None:
            current = pool()
            if current is not None:
                await self.cleanup(current)
            await sleep(self.config.cleanup_interval)

        await forever(step, what="retention cleanup", backoff=Backoff(base=self.config.backoff_base,
                                                                      cap=self.config.backoff_cap),
                      log=log, stopped=stopped, sleep=sleep, expected=DB_UNAVAILABLE,
                      floor=self.config.cleanup_interval, on_error=lambda _exc: self.metrics.errors.inc())

    async def cleanup(self, pool: asyncpg.Pool) -> None:
        """Delete published rows older than the retention window in bounded batches; VACUUM now and then."""
        for _ in range(self.config.cleanup_max_batches):
            deleted = await store.delete_published(pool, self.config.retention_s, self.config.cleanup_batch)
            self.metrics.deleted.inc(deleted)
            self.deleted_since_vacuum += deleted
            if deleted < self.config.cleanup_batch:
                break
        threshold = self.config.vacuum_after_deleted
        if threshold and self.deleted_since_vacuum >= threshold:
            started = time.monotonic()
            await store.vacuum(pool)
            self.deleted_since_vacuum = 0
            self.metrics.vacuums.inc()
            log.info("vacuumed the outbox in %.2fs", time.monotonic() - started)
