"""The control loop every process runs beside its work: it keeps the flags and the database schema it sees
fresh (LISTEN/NOTIFY, with a poll fallback), and writes a heartbeat row saying what the process accepts and
which modes it applies, so that a gate can ask "does every live bonus worker accept ManagerCreated v2?".

One asyncpg connection, reconnected with backoff; while the database is down the process keeps its last
snapshot (and its heartbeat goes stale, which gates report as such).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

from eventbus.errors import DependencyUnavailable
from eventbus.failures import DB_UNAVAILABLE
from eventbus.flags import store as flag_store
from eventbus.flags.ddl import NOTIFY_CHANNEL as FLAGS_CHANNEL
from eventbus.flags.live import LiveFlags
from eventbus.flags.provider import Switches
from eventbus.flags.spec import FlagSpec
from eventbus.resilience import Backoff
from eventbus.resilience.retry import forever

log = logging.getLogger(__name__)

#: the playbook runner notifies this after applying a migration, so processes re-read their schema at once
SCHEMA_CHANNEL = "schema_changed"

_HEARTBEAT = """
INSERT INTO instances (instance_id, role, host, pid, report) VALUES ($1, $2, $3, $4, $5::jsonb)
ON CONFLICT (instance_id) DO UPDATE SET last_seen = clock_timestamp(), stopped_at = NULL, report = EXCLUDED.report
"""
_COLUMNS = """
SELECT table_name, column_name, is_nullable = 'YES' AS nullable FROM information_schema.columns
WHERE table_schema = current_schema()
"""
_FORGET = ("DELETE FROM instances WHERE stopped_at < clock_timestamp() - interval '1 hour' "
           "OR last_seen < clock_timestamp() - interval '1 day'")


def new_instance_id(name: str) -> str:
    return f"{name}@{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass
class SchemaState:
    """The columns this process's database has now, and its Alembic revisions (one per applied branch head)."""

    columns: dict[str, dict[str, bool]] = field(default_factory=dict)  # table -> column -> nullable
    revisions: list[str] = field(default_factory=list)
    loaded: bool = False

    def ready(self) -> SchemaState:
        """This state, once it has been read (before that a handler cannot know which columns exist)."""
        if not self.loaded:
            raise DependencyUnavailable("database", "its schema has not been read yet", retry_after=1)
        return self

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, {})

    def has_table(self, table: str) -> bool:
        return table in self.columns


#: numbers OpenFeature domains: one per Control in this process, never reused
_DOMAINS = itertools.count(1)


class Control:
    def __init__(self, dsn: str, *, name: str, role: str, specs: Iterable[FlagSpec],
                 report: Callable[[], dict[str, Any]] | None = None, interval: float = 1.0,
                 schema_interval: float = 5.0, instance_id: str | None = None) -> None:
        self.dsn = dsn
        self.name = name
        self.role = role
        self.flags = LiveFlags(specs)
        #: what the process's code reads: the flags through OpenFeature
        # a domain of its own: id(self) is reused once a Control is freed, and its provider would be replaced
        self.switches = Switches(self.flags, domain=f"{name}:{next(_DOMAINS)}")
        self.schema = SchemaState()
        self.report = report or dict
        self.interval = interval
        self.schema_interval = schema_interval
        self.instance_id = instance_id or new_instance_id(name)
        self.heartbeats = 0
        self._conn: asyncpg.Connection | None = None
        self._wake = asyncio.Event()
        self._schema_due = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self, wait: float = 5.0) -> None:
        """Start the loop; wait up to `wait` s for the first read (the process starts on defaults otherwise)."""
        self._task = asyncio.create_task(self._run(), name=f"control-{self.name}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), wait)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.execute("UPDATE instances SET stopped_at = clock_timestamp() WHERE instance_id = $1",
                                   self.instance_id, timeout=2)
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def refresh_soon(self) -> None:
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        async def step() -> None:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self._connect()
                await self.tick(self._conn)
            except BaseException:
                await self._drop()  # reconnect next time; meanwhile the last flags stay in force
                raise
            self._ready.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()

        await forever(step, what="control loop (the last flags stay in force)", backoff=Backoff(base=0.2, cap=5.0),
                      log=log, stopped=self._stop.is_set, expected=DB_UNAVAILABLE)

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn, timeout=5, command_timeout=10)
        await conn.add_listener(FLAGS_CHANNEL, self._notified)
        await conn.add_listener(SCHEMA_CHANNEL, self._schema_notified)
        await flag_store.ensure_defaults(conn, self.flags.specs.values())
        self._schema_due = 0.0
        return conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    def _schema_notified(self, *_args: object) -> None:
        self._schema_due = 0.0
        self._wake.set()

    async def tick(self, conn: asyncpg.Connection) -> None:
        """One round: flags, schema (when due), heartbeat."""
        self.flags.apply(await flag_store.read_all(conn))
        if time.monotonic() >= self._schema_due:
            await self._read_schema(conn)
            self._schema_due = time.monotonic() + self.schema_interval
        await conn.execute(_HEARTBEAT, self.instance_id, self.role, socket.gethostname(), os.getpid(),
                           orjson.dumps(self.heartbeat_body()).decode())
        self.heartbeats += 1
        if self.heartbeats % 600 == 1:
            await conn.execute(_FORGET)

    async def _read_schema(self, conn: asyncpg.Connection) -> None:
        columns: dict[str, dict[str, bool]] = {}
        for row in await conn.fetch(_COLUMNS):
            columns.setdefault(row["table_name"], {})[row["column_name"]] = row["nullable"]
        revisions: list[str] = []
        if "alembic_version" in columns:
            revisions = sorted(r["version_num"] for r in await conn.fetch("SELECT version_num FROM alembic_version"))
        if self.schema.loaded and (columns != self.schema.columns or revisions != self.schema.revisions):
            log.info("database schema changed: revisions %s", ", ".join(revisions))
        self.schema.columns, self.schema.revisions, self.schema.loaded = columns, revisions, True

    def heartbeat_body(self) -> dict[str, Any]:
        return {"name": self.name, "flags_version": self.flags.version, "flags": self.flags.values(),
                "schema_revisions": self.schema.revisions, **self.report()}
