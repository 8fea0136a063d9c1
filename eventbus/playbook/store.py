"""Run state in PostgreSQL (the `playbooks` database): one active run per playbook, enforced by a unique
index; each step's state, attempts, gate and check reports and recorded outcome; a log of every attempt.
A runner holds a session-level advisory lock on its playbook while it works: a killed runner's lock goes
with its connection, and the next call resumes the run."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from eventbus.playbook.model import Playbook

ACTIVE = ("running", "blocked", "failed")


@dataclass(frozen=True)
class Run:
    id: int
    playbook: str
    direction: str
    state: str
    started_at: datetime
    started_by: str
    finished_at: datetime | None


@dataclass(frozen=True)
class StepState:
    number: int
    title: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    runner: str | None
    gates: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    outcome: dict[str, Any]
    error: str | None


class RunAlreadyActive(RuntimeError):
    pass


def _run(r: asyncpg.Record) -> Run:
    return Run(r["id"], r["playbook"], r["direction"], r["state"], r["started_at"], r["started_by"], r["finished_at"])


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def lock_key(playbook: str) -> int:
    return 0x0B00_0000 | zlib.crc32(playbook.encode()) & 0x00FF_FFFF


async def try_lock(conn: asyncpg.Connection, playbook: str) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(playbook)))


async def unlock(conn: asyncpg.Connection, playbook: str) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1)", lock_key(playbook))


async def lock_holder(conn: asyncpg.Connection, playbook: str) -> str | None:
    """Who holds the playbook's lock (application name and pid of the session), if anyone."""
    row = await conn.fetchrow(
        "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = $1", lock_key(playbook) & 0xFFFFFFFF)
    return f"{row['application_name'] or 'a runner'} (backend pid {row['pid']})" if row else None


async def active_run(conn: asyncpg.Connection | asyncpg.Pool, playbook: str) -> Run | None:
    row = await conn.fetchrow("SELECT * FROM playbook_runs WHERE playbook = $1 AND state = ANY($2::text[])",
                              playbook, list(ACTIVE))
    return _run(row) if row else None


async def last_run(conn: asyncpg.Connection | asyncpg.Pool, playbook: str) -> Run | None:
    row = await conn.fetchrow("SELECT * FROM playbook_runs WHERE playbook = $1 ORDER BY id DESC LIMIT 1", playbook)
    return _run(row) if row else None


async def done(conn: asyncpg.Connection | asyncpg.Pool, playbook: str) -> bool:
    run = await last_run(conn, playbook)
    return run is not None and run.state == "done" and run.direction == "forward"


async def start_run(conn: asyncpg.Connection, playbook: Playbook, by: str, direction: str = "forward") -> Run:
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                "INSERT INTO playbook_runs (playbook, direction, state, started_by, playbook_digest) "
                "VALUES ($1, $2, 'running', $3, $4) RETURNING *", playbook.name, direction, by, playbook.digest)
        except asyncpg.UniqueViolationError as exc:
            raise RunAlreadyActive(f"{playbook.name} already has an active run") from exc
        await conn.executemany("INSERT INTO playbook_steps (run_id, number, title) VALUES ($1, $2, $3)",
                               [(row["id"], s.number, s.title) for s in playbook.steps])
    return _run(row)


async def steps(conn: asyncpg.Connection | asyncpg.Pool, run_id: int) -> list[StepState]:
    rows = await conn.fetch("SELECT * FROM playbook_steps WHERE run_id = $1 ORDER BY number", run_id)
    return [StepState(r["number"], r["title"], r["state"], r["attempts"], r["started_at"], r["finished_at"],
                      r["runner"], orjson.loads(r["gates"]) if r["gates"] else [],
                      orjson.loads(r["checks"]) if r["checks"] else [], orjson.loads(r["outcome"]), r["error"])
            for r in rows]


async def set_run_state(conn: asyncpg.Connection, run_id: int, state: str) -> None:
    finished = state in ("done", "rolled-back")
    await conn.execute("UPDATE playbook_runs SET state = $2, updated_at = clock_timestamp(), "
                       "finished_at = CASE WHEN $3 THEN clock_timestamp() ELSE NULL END WHERE id = $1",
                       run_id, state, finished)


async def reopen_for_rollback(conn: asyncpg.Connection, run_id: int) -> None:
    await conn.execute("UPDATE playbook_runs SET state = 'running', direction = 'rollback', finished_at = NULL, "
                       "updated_at = clock_timestamp() WHERE id = $1", run_id)


async def resume_forward(conn: asyncpg.Connection, run_id: int) -> None:
    """After a partial rollback: the run goes on forward from its first step not done."""
    await conn.execute("UPDATE playbook_runs SET state = 'blocked', direction = 'forward', finished_at = NULL, "
                       "updated_at = clock_timestamp() WHERE id = $1", run_id)


async def begin_step(conn: asyncpg.Connection, run_id: int, number: int, runner: str) -> None:
    await conn.execute("UPDATE playbook_steps SET state = 'running', attempts = attempts + 1, runner = $3, "
                       "started_at = coalesce(started_at, clock_timestamp()), error = NULL "
                       "WHERE run_id = $1 AND number = $2", run_id, number, runner)


async def save_step(conn: asyncpg.Connection, run_id: int, number: int, *, state: str | None = None,
                    gates: list[dict[str, Any]] | None = None, checks: list[dict[str, Any]] | None = None,
                    outcome: dict[str, Any] | None = None, error: str | None = None) -> None:
    await conn.execute(
        "UPDATE playbook_steps SET state = coalesce($3, state), gates = coalesce($4::jsonb, gates), "
        "checks = coalesce($5::jsonb, checks), outcome = coalesce($6::jsonb, outcome), error = $7, "
        "finished_at = CASE WHEN $3 IN ('done', 'undone') THEN clock_timestamp() ELSE finished_at END "
        "WHERE run_id = $1 AND number = $2", run_id, number, state,
        None if gates is None else _json(gates), None if checks is None else _json(checks),
        None if outcome is None else _json(outcome), error)


async def log(conn: asyncpg.Connection, run_id: int, number: int | None, runner: str, message: str) -> None:
    await conn.execute("INSERT INTO playbook_log (run_id, number, runner, message) VALUES ($1, $2, $3, $4)",
                       run_id, number, runner, message[:4000])
