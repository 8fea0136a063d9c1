"""What gates and actions reach: the databases, the broker, the registry and the running stack, plus the run
they belong to (earlier steps' recorded outcomes, when the run started) and a place to print progress."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from eventbus.db import plain_url, with_database
from eventbus.topics import partitions_of

#: restart one process of the running stack and wait until it is healthy: (name) -> exit code
Restarter = Callable[[str], Awaitable[int]]


@dataclass
class Settings:
    database_url: str
    bootstrap_servers: str
    registry_url: str
    registry_token: str
    schemas_dir: Path
    #: the per-database URL overrides (e.g. BONUS_DATABASE_URL); else `database_url`'s server
    database_urls: Mapping[str, str] = field(default_factory=dict)
    #: how long a heartbeat may be old and its instance still count as live; older: stale (cannot tell),
    #: and older than `dead_after` (or stopped cleanly): dead, named but not counted
    live_within: float = 3.0
    dead_after: float = 30.0


class Context:
    def __init__(self, settings: Settings, *, out: TextIO = sys.stdout, restarter: Restarter | None = None) -> None:
        self.settings = settings
        self.out = out
        self.restarter = restarter
        self._pools: dict[str, asyncpg.Pool] = {}
        self._http: httpx.AsyncClient | None = None
        self.run_started_at: datetime | None = None
        #: step number -> what that step recorded (cut-over ids, offsets, ...) in this run
        self.outcomes: dict[int, dict[str, Any]] = {}
        #: the step being run, and where its actions record what they did (saved after each action)
        self.step: int = 0
        self.outcome: dict[str, Any] = {}
        self.save_outcome: Callable[[], Awaitable[None]] | None = None

    # -- databases ------------------------------------------------------------------------------------
    def url_of(self, database: str) -> str:
        return self.settings.database_urls.get(database) or with_database(self.settings.database_url, database)

    def url_of_playbooks(self) -> str:
        return plain_url(self.url_of("playbooks"))

    async def db(self, database: str) -> asyncpg.Pool:
        pool = self._pools.get(database)
        if pool is None:
            pool = await asyncpg.create_pool(plain_url(self.url_of(database)), min_size=1, max_size=4, timeout=10,
                                             command_timeout=60)
            self._pools[database] = pool
        return pool

    # -- the registry ---------------------------------------------------------------------------------
    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10)
        return self._http

    # -- the broker -----------------------------------------------------------------------------------
    async def end_offsets(self, topic: str) -> dict[int, int]:
        """partition -> the offset after the last record, read as a fetch's high watermark (Tansu's
        ListOffsets(latest) can be short of the log's end)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
            listed = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, max(0, listed[tp] - 1))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in partitions):
                await consumer.getmany(timeout_ms=200)
            ends = {tp.partition: max(listed[tp], consumer.highwater(tp) or 0) for tp in partitions}
            return ends
        finally:
            await consumer.stop()

    async def earliest_offsets(self, topic: str) -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
            return {tp.partition: offset for tp, offset in (await consumer.beginning_offsets(partitions)).items()}
        finally:
            await consumer.stop()

    async def committed(self, group: str, topic: str) -> dict[int, int | None]:
        """partition -> the group's committed offset (None: nothing committed)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap_servers, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = sorted(await partitions_of(consumer, topic))
            return {p: await consumer.committed(TopicPartition(topic, p)) for p in partitions}
        finally:
            await consumer.stop()

    async def topics(self) -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap_servers)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    # -- output ---------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    async def record(self, **facts: Any) -> None:
        """Add to the current step's outcome and save it at once (a runner killed later resumes from it)."""
        self.outcome.update(facts)
        if self.save_outcome is not None:
            await self.save_outcome()

    async def close(self) -> None:
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
