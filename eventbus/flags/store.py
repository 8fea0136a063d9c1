"""The flags' SQL (asyncpg): read, set with an audit row and the outbox boundary, retire values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from eventbus.flags.spec import FlagError, FlagSpec, FlagValue, Kind


@dataclass(frozen=True)
class FlagRow:
    name: str
    value: FlagValue
    retired: list[Any]
    changed_at: datetime
    changed_by: str
    reason: str
    change_id: int


@dataclass(frozen=True)
class Change:
    name: str
    old: FlagValue
    new: FlagValue
    changed: bool
    change_id: int
    #: outbox ids above this were written under the new value (None: this database has no outbox)
    outbox_boundary: int | None
    changed_at: datetime


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _row(r: asyncpg.Record) -> FlagRow:
    return FlagRow(r["name"], orjson.loads(r["value"]), orjson.loads(r["retired"]), r["changed_at"],
                   r["changed_by"], r["reason"], r["change_id"])


_SELECT = "SELECT name, value, retired, changed_at, changed_by, reason, change_id FROM flags"


def _overlap(spec: FlagSpec, value: FlagValue, retired: list[Any]) -> list[Any]:
    """The retired values that `value` uses: itself, or its members for a set kind."""
    if spec.kind is Kind.INT_SET and isinstance(value, list):
        return [v for v in value if v in retired]
    return [value] if value in retired else []


async def ensure_defaults(conn: asyncpg.Connection, specs: Iterable[FlagSpec]) -> None:
    """Give every flag its first value (env or default) unless it has one: never overrides a set flag."""
    for spec in specs:
        by = f"env {spec.env}" if spec.env and spec.initial() != spec.default else "default"
        await conn.execute(
            "INSERT INTO flags (name, value, changed_by, reason) VALUES ($1, $2::jsonb, $3, 'first value') "
            "ON CONFLICT (name) DO NOTHING", spec.name, _json(spec.initial()), by)


async def read_all(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, FlagRow]:
    return {r["name"]: _row(r) for r in await conn.fetch(_SELECT)}


async def version(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(change_id), 0) FROM flags"))


async def set_flag(conn: asyncpg.Connection, spec: FlagSpec, value: FlagValue, *, by: str, reason: str) -> Change:
    """Set one flag, with an audit row. Waits for the writers that read the old value in their transaction
    (they hold FOR SHARE on the row), so `outbox_boundary` splits the outbox exactly at the change."""
    value = spec.validate(value)
    if not reason.strip():
        raise FlagError(f"{spec.name}: a reason is required (REASON=...)")
    async with conn.transaction():
        row = await conn.fetchrow(_SELECT + " WHERE name = $1 FOR UPDATE", spec.name)
        if row is None:
            await ensure_defaults(conn, [spec])
            row = await conn.fetchrow(_SELECT + " WHERE name = $1 FOR UPDATE", spec.name)
        current = _row(row)
        if current.value == value:
            return Change(spec.name, current.value, value, False, current.change_id, None, current.changed_at)
        retired_now = _overlap(spec, value, current.retired)
        if retired_now:
            why = await conn.fetchval("SELECT reason FROM flag_changes WHERE name = $1 AND reason LIKE 'retired %' "
                                      "ORDER BY id DESC LIMIT 1", spec.name)
            raise FlagError(f"{spec.name}: {', '.join(spec.render(v) for v in retired_now)} was {why or 'retired'}; "
                            "the code path behind it is gone")
        has_outbox = await conn.fetchval("SELECT to_regclass('outbox') IS NOT NULL")
        boundary = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox") if has_outbox else None
        change = await conn.fetchrow(
            "INSERT INTO flag_changes (name, old_value, new_value, changed_by, reason, outbox_boundary) "
            "VALUES ($1, $2::jsonb, $3::jsonb, $4, $5, $6) RETURNING id, changed_at",
            spec.name, _json(current.value), _json(value), by, reason, boundary)
        await conn.execute(
            "UPDATE flags SET value = $2::jsonb, changed_at = $3, changed_by = $4, reason = $5, change_id = $6 "
            "WHERE name = $1", spec.name, _json(value), change["changed_at"], by, reason, change["id"])
    return Change(spec.name, current.value, value, True, change["id"], boundary, change["changed_at"])


async def retire(conn: asyncpg.Connection, spec: FlagSpec, values: list[Any], *, by: str, reason: str) -> list[Any]:
    """Refuse these values from now on (the code path behind them is removed). Returns the retired list."""
    async with conn.transaction():
        row = await conn.fetchrow(_SELECT + " WHERE name = $1 FOR UPDATE", spec.name)
        if row is None:
            raise FlagError(f"{spec.name} has no value yet")
        current = _row(row)
        if _overlap(spec, current.value, values):
            raise FlagError(f"{spec.name} is {spec.render(current.value)}: switch it away before retiring "
                            f"{', '.join(spec.render(v) for v in values)}")
        retired = current.retired + [v for v in values if v not in current.retired]
        if retired != current.retired:
            # the audit keeps who retired what and why; the row's "since/by" stay those of its value
            await conn.execute("UPDATE flags SET retired = $2::jsonb WHERE name = $1", spec.name, _json(retired))
            await conn.execute(
                "INSERT INTO flag_changes (name, old_value, new_value, changed_by, reason) "
                "VALUES ($1, $2::jsonb, $2::jsonb, $3, $4)", spec.name, _json(current.value), by,
                f"retired {', '.join(spec.render(v) for v in values)} ({reason})")
    return retired


async def unretire(conn: asyncpg.Connection, spec: FlagSpec, values: list[Any], *, by: str, reason: str) -> None:
    async with conn.transaction():
        row = await conn.fetchrow(_SELECT + " WHERE name = $1 FOR UPDATE", spec.name)
        if row is None:
            return
        current = _row(row)
        retired = [v for v in current.retired if v not in values]
        await conn.execute("UPDATE flags SET retired = $2::jsonb WHERE name = $1", spec.name, _json(retired))
        await conn.execute(
            "INSERT INTO flag_changes (name, old_value, new_value, changed_by, reason) "
            "VALUES ($1, $2::jsonb, $2::jsonb, $3, $4)", spec.name, _json(current.value), by,
            f"allowed again {', '.join(spec.render(v) for v in values)} ({reason})")


async def last_change(conn: asyncpg.Connection | asyncpg.Pool, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT id, old_value, new_value, changed_at, changed_by, reason, outbox_boundary FROM flag_changes "
        "WHERE name = $1 AND old_value IS DISTINCT FROM new_value ORDER BY id DESC LIMIT 1", name)
    return row
