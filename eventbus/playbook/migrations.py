"""Alembic from a playbook step: which revisions a database has, and applying exactly one."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from alembic import command
from alembic.script import ScriptDirectory

from eventbus.control import SCHEMA_CHANNEL
from eventbus.migrate import alembic_config
from eventbus.playbook.context import Context


class MigrationRefused(RuntimeError):
    pass


@dataclass(frozen=True)
class Applied:
    heads: frozenset[str]
    all: frozenset[str]

    def __contains__(self, revision: object) -> bool:
        return revision in self.all


def script(database: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(database, "postgresql://unused/x"))


def ancestors(database: str, revisions: list[str]) -> set[str]:
    if not revisions:
        return set()
    return {rev.revision for rev in script(database).iterate_revisions(tuple(revisions), "base")}


async def applied_revisions(ctx: Context, database: str) -> Applied:
    pool = await ctx.db(database)
    heads = [r["version_num"] for r in await pool.fetch("SELECT version_num FROM alembic_version")]
    return Applied(frozenset(heads), frozenset(ancestors(database, heads)))


def _in_thread(fn: object, *args: object) -> None:
    # Alembic's env runs its own event loop: keep it off ours
    with ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()  # type: ignore[arg-type]


async def upgrade_one(ctx: Context, database: str, revision: str) -> bool:
    """Apply `revision` alone; False when it is already applied. Refused when its ancestors are not all
    applied (that would apply another playbook's steps)."""
    applied = await applied_revisions(ctx, database)
    if revision in applied:
        return False
    needed = ancestors(database, [revision]) - set(applied.all) - {revision}
    if needed:
        raise MigrationRefused(f"{database}: applying {revision} would also apply {', '.join(sorted(needed))}, "
                               "which belong to another playbook's steps: run those first")
    url = ctx.url_of(database)
    await asyncio.to_thread(_in_thread, command.upgrade, alembic_config(database, url), revision)
    await notify_schema(ctx, database)
    return True


async def downgrade_one(ctx: Context, database: str, revision: str) -> bool:
    """Undo `revision` alone; False when it is not applied. Refused when a later revision depends on it."""
    applied = await applied_revisions(ctx, database)
    if revision not in applied:
        return False
    if revision not in applied.heads:
        later = sorted(h for h in applied.heads if revision in ancestors(database, [h]))
        raise MigrationRefused(f"{database}: {revision} has later revisions applied ({', '.join(later)}): "
                               "roll those back first")
    await asyncio.to_thread(_in_thread, command.downgrade, alembic_config(database, ctx.url_of(database)),
                            f"{revision}@-1")
    await notify_schema(ctx, database)
    return True


async def notify_schema(ctx: Context, database: str) -> None:
    """Every process of that database re-reads its schema now, not at its next poll."""
    pool = await ctx.db(database)
    await pool.execute(f"NOTIFY {SCHEMA_CHANNEL}")
