"""The replicated PostgreSQL (eventbus.stack.replication) under the stack's supervision, on two real nodes:
the primary killed under writes fails over with no acknowledged write lost, twice (there and back), and a
commit waits while its standby cannot confirm it (synchronous replication)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest

from eventbus.stack.replication import ReplicatedPostgres, alive
from eventbus.stack.supervision import NodeUnit, RestartPolicy, Supervision
from tests.waiting import eventually, free_port


@dataclass
class Running:
    pair: ReplicatedPostgres
    supervision: Supervision
    said: list[str]
    stop: bool = False


@pytest.fixture
async def replicated(tmp_path: Path) -> AsyncIterator[Running]:
    pair = ReplicatedPostgres(tmp_path, (free_port(), free_port()))
    await asyncio.to_thread(pair.start)
    said: list[str] = []
    supervision = Supervision([NodeUnit(pair, name) for name in pair.nodes],
                              RestartPolicy(backoff_initial=0.2, health_interval=0.5), say=said.append, tick=0.05)
    running = Running(pair, supervision, said)
    task = asyncio.create_task(supervision.run(lambda: running.stop))
    conn = await asyncpg.connect(pair.url)
    await conn.execute("CREATE TABLE acked (id bigint PRIMARY KEY)")
    await conn.close()
    try:
        yield running
    finally:
        running.stop = True
        await task
        await asyncio.to_thread(pair.stop)


@dataclass
class Writers:
    """Clients inserting ids one commit at a time; an id counts as acknowledged once its commit returned."""

    url: str
    acked: list[tuple[float, int]] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    running: bool = True

    async def one(self, first: int, step: int) -> None:
        next_id, conn = first, None
        while self.running:
            try:
                if conn is None:
                    conn = await asyncpg.connect(self.url, timeout=2)
                await conn.execute("INSERT INTO acked VALUES ($1)", next_id)
                self.acked.append((time.monotonic(), next_id))
                next_id += step
            except Exception:  # any failure: not acknowledged, a new connection
                self.errors.append(time.monotonic())
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
                conn = None
                # an id whose commit failed may be stored or not: the next id is a new one either way
                next_id += step
                await asyncio.sleep(0.05)
        if conn is not None:
            await conn.close()

    def after(self, moment: float) -> int:
        return sum(1 for at, _ in self.acked if at > moment)


async def ids_on(host: str, port: int) -> set[int]:
    conn = await asyncpg.connect(f"postgresql://postgres@{host}:{port}/postgres", timeout=5)
    try:
        return {r[0] for r in await conn.fetch("SELECT id FROM acked")}
    finally:
        await conn.close()


async def test_the_primary_killed_under_writes_fails_over_and_no_acknowledged_write_is_lost(
        replicated: Running) -> None:
    pair = replicated.pair
    writers = Writers(pair.url)
    tasks = [asyncio.create_task(writers.one(i, 4)) for i in range(4)]
    try:
        failovers = []
        for round_ in range(2):  # there and back: each node is the primary that dies once
            await eventually(lambda r=round_: asyncio.sleep(0, len(writers.acked) > 150 * (r + 1)), timeout=60,
                             what="writes acknowledged")
            primary = pair.primary()
            assert primary is not None
            killed_at = time.monotonic()
            os.killpg(primary.postmaster_pid() or 0, signal.SIGKILL)  # the node is lost: postmaster and backends
            await eventually(lambda r=round_: asyncio.sleep(0, len(pair.failovers) > r), timeout=30,
                             what=f"the standby promoted: {replicated.said}")
            promoted_at = pair.failovers[-1][0]
            await eventually(lambda p=promoted_at: asyncio.sleep(0, writers.after(p) > 0), timeout=30,
                             what="a write acknowledged by the promoted node")
            failovers.append(next(at for at, _ in writers.acked if at > promoted_at) - killed_at)
            promoted = pair.peer(primary)
            assert not promoted.is_standby and pair.failovers[-1][1] == pair.name_of(promoted)
            # the old primary comes back as the new one's standby, by itself
            await eventually(lambda p=primary: asyncio.sleep(0, alive(p) and p.is_standby), timeout=60,
                             what=f"the old primary back as a standby: {replicated.said}")
        await eventually(lambda: asyncio.sleep(0, len(writers.acked) > 450), timeout=60, what="writes after both")
    finally:
        writers.running = False
        await asyncio.gather(*tasks)
    acknowledged = {i for _, i in writers.acked}
    assert len(pair.failovers) == 2 and sum("FAILOVER" in line for line in replicated.said) == 2
    for node in pair.nodes.values():  # every acknowledged write is on both nodes (the standby may lag in replay)
        await eventually(lambda n=node: _holds(n.host, n.port, acknowledged), timeout=30,
                         what=f"every acknowledged id on {node.port}")
    print(f"failover: kill -> first acknowledged write {', '.join(f'{s:.2f} s' for s in failovers)}; "
          f"{len(acknowledged)} writes acknowledged, {len(writers.errors)} failed attempts")


async def _holds(host: str, port: int, acknowledged: set[int]) -> bool:
    missing = acknowledged - await ids_on(host, port)
    assert not missing or len(missing) < len(acknowledged), f"{len(missing)} acknowledged ids missing on {port}"
    return not missing


async def test_a_commit_waits_while_the_standby_cannot_confirm_it_and_completes_when_it_can(
        replicated: Running) -> None:
    pair = replicated.pair
    primary = pair.primary()
    assert primary is not None
    standby = pair.peer(primary)
    pid = standby.postmaster_pid()
    assert pid is not None
    # frozen, not dead: the supervision leaves a stopped process alone, so the standby stays away until we say
    for child in _family(pid):
        os.kill(child, signal.SIGSTOP)
    conn = await asyncpg.connect(pair.url)
    watcher = await asyncpg.connect(pair.url)
    try:
        insert = asyncio.create_task(conn.execute("INSERT INTO acked VALUES (1)"))
        waiting = await eventually(lambda: watcher.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"), timeout=20,
            what="a commit waiting for its standby")
        assert waiting == 1 and not insert.done()
        for child in _family(pid):
            os.kill(child, signal.SIGCONT)
        assert await asyncio.wait_for(insert, 30) == "INSERT 0 1"
        await eventually(lambda: _holds(standby.host, standby.port, {1}), timeout=20, what="the row on the standby")
    finally:
        for child in _family(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)
        await conn.close()
        await watcher.close()


def _family(pid: int) -> list[int]:
    """The postmaster and its children (the WAL receiver is one)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


async def test_a_write_acknowledged_by_the_primary_is_already_readable_on_the_standby(replicated: Running) -> None:
    """synchronous_commit=remote_apply: the standby applied the commit before it returned, so a read there (the
    stack's READ_DATABASE_URL) sees every acknowledged write: no waiting, no retry."""
    pair = replicated.pair
    primary = pair.primary()
    assert primary is not None
    standby = pair.peer(primary)
    writer = await asyncpg.connect(pair.url)
    reader = await asyncpg.connect(pair.read_url)
    try:
        assert await reader.fetchval("SELECT inet_server_port()") == standby.port
        assert await reader.fetchval("SELECT pg_is_in_recovery()")
        for i in range(1000, 1200):
            await writer.execute("INSERT INTO acked VALUES ($1)", i)
            assert await reader.fetchval("SELECT count(*) FROM acked WHERE id = $1", i) == 1, f"{i} not yet applied"
    finally:
        await writer.close()
        await reader.close()
