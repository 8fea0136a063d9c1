"""Where a fresh stack starts: seed 004's "before" state (the default) or, with START=final, the state all five
playbooks end in. A data folder that has run playbooks keeps its state: starting never moves a database
forward or back, only creates what is missing.

Before: every service database at its `0001_before` revision; the registry holds only the versions the
"before" systems produce or name (TaskCreated v0, ManagerCreated v0, TaskRating v0); the switches at their
defaults (COMM-070 and COMM-040 synchronous, COMM-060 on TaskRating events).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import asyncpg
import orjson

from eventbus.db import plain_url, with_database
from eventbus.flags import store as flag_store
from eventbus.migrate import ALL_DATABASES, upgrade
from services import flags as switches
from services.topology import TASK_RATINGS

Start = Literal["before", "final"]
SERVICE_TREES = ("management", "hiring", "bonus")
BEFORE_REVISION = "0001_before"
#: the branch of each service tree that no playbook owns: the backbone's tables, applied in every stage
BACKBONE = "backbone"
#: the registry's content in the "before" state
BASELINE_SCHEMAS = ("TaskCreated:0", "ManagerCreated:0", "TaskRating:0")


class StartRefused(RuntimeError):
    pass


def registry_seed(start: Start) -> str:
    """REGISTRY_SEED_VERSIONS for the registry process: what it registers at start when missing."""
    return ",".join(BASELINE_SCHEMAS) if start == "before" else "all"


async def _exists(server_url: str, database: str) -> bool:
    conn = await asyncpg.connect(plain_url(with_database(server_url, "postgres")), timeout=10)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database))
    finally:
        await conn.close()


def migrate(server_url: str, start: Start) -> None:
    fresh = not asyncio.run(_exists(server_url, "management"))
    if start == "final" and not fresh and not asyncio.run(_at_final(server_url)):
        raise StartRefused("START=final only brings a fresh data folder to the final state; this one has data "
                           "(`make clean` first, or run the playbooks: make playbook-run NAME=...)")
    for database in ALL_DATABASES:
        target = BEFORE_REVISION if database in SERVICE_TREES and start == "before" else "heads"
        upgrade(database, server_url, target)
        if database in SERVICE_TREES:
            # the backbone's own tables (broker-loss recovery, durable dead letters): in every stage
            upgrade(database, server_url, f"{BACKBONE}@head")
    if start == "final" and fresh:
        asyncio.run(_final_switches(server_url))
        asyncio.run(_playbooks_done(server_url))


async def _final_switches(server_url: str) -> None:
    for service in SERVICE_TREES:
        conn = await asyncpg.connect(plain_url(with_database(server_url, service)), timeout=10)
        try:
            specs = switches.of_service(service)
            await flag_store.ensure_defaults(conn, specs)
            for spec in specs:
                if spec.name in switches.FINAL:
                    await flag_store.set_flag(conn, spec, switches.FINAL[spec.name], by="stack START=final",
                                              reason="a fresh stack started in the final state of seed 004")
        finally:
            await conn.close()


async def _playbooks_done(server_url: str) -> None:
    """The five playbooks recorded as done (by START=final, not run): a playbook run on this stack must not
    move it back to the state its first steps assume."""
    from eventbus.playbook import store
    from services.playbooks import playbooks
    conn = await asyncpg.connect(plain_url(with_database(server_url, "playbooks")), timeout=10)
    try:
        for playbook in playbooks().values():
            run = await store.start_run(conn, playbook, "stack START=final")
            for step in playbook.steps:
                await store.save_step(conn, run.id, step.number, state="done",
                                      outcome={"by": "a fresh stack started in the final state (START=final)"})
            await store.set_run_state(conn, run.id, "done")
    finally:
        await conn.close()


async def _at_final(server_url: str) -> bool:
    conn = await asyncpg.connect(plain_url(with_database(server_url, "bonus")), timeout=10)
    try:
        raw = await conn.fetchval("SELECT value FROM flags WHERE name = 'bonus.rating_source'")
        return raw is not None and orjson.loads(raw) == switches.FINAL["bonus.rating_source"]
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await conn.close()


async def retired_topics(server_url: str) -> set[str]:
    """Topics a playbook deleted for good (COMM-060 step 7): nothing declares them again."""
    conn = await asyncpg.connect(plain_url(with_database(server_url, "hiring")), timeout=10)
    try:
        raw = await conn.fetchval("SELECT value FROM flags WHERE name = 'hiring.task_rating_events'")
    except asyncpg.UndefinedTableError:
        raw = None
    finally:
        await conn.close()
    value = orjson.loads(raw) if raw is not None else None
    if value == "removed":
        return {TASK_RATINGS.name}
    return set()


def main() -> None:
    """`make migrate`: create the databases and bring a fresh server to START (before, by default). A used
    one keeps its state: the playbooks move it (make playbook-run)."""
    import argparse

    from eventbus.settings import CommonSettings
    parser = argparse.ArgumentParser(prog="python -m services.stages", description=main.__doc__)
    parser.add_argument("--start", choices=["before", "final"], default="before")
    args = parser.parse_args()
    try:
        migrate(CommonSettings().database_url, args.start)
    except StartRefused as exc:
        raise SystemExit(str(exc)) from None
    print(f"databases ready: {', '.join(ALL_DATABASES)} (a fresh server starts {args.start})")


if __name__ == "__main__":
    main()
