"""The migrated databases and the table definitions agree, at every stage of the staged migrations.

`services/*/tables.py` declare every column of a table's life (eventbus.lifecycle); at each Alembic revision
the database must be exactly what those declarations say it is once that revision and its ancestors ran."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from eventbus.db import create_engine
from eventbus.lifecycle import expected_metadata
from eventbus.migrate import alembic_config, upgrade
from eventbus.stack.postgres import EmbeddedPostgres
from registry.tables import metadata as registry_tables
from services.bonus.tables import metadata as bonus_tables
from services.hiring.tables import metadata as hiring_tables
from services.management.tables import metadata as management_tables

pytestmark = pytest.mark.integration

TREES = {"management": management_tables, "hiring": hiring_tables, "bonus": bonus_tables,
         "registry": registry_tables}


def _targets(tree: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(tree, "postgresql://unused/x"))
    return ["heads", *sorted(rev.revision for rev in script.walk_revisions())]


def _applied(tree: str, heads: list[str]) -> set[str]:
    script = ScriptDirectory.from_config(alembic_config(tree, "postgresql://unused/x"))
    return {rev.revision for rev in script.iterate_revisions(heads, "base")}


def _diff(url: str, tree: str) -> tuple[list[str], list[Any]]:
    metadata = TREES[tree]
    async def run() -> tuple[list[str], list[Any]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                heads = sorted(r[0] for r in (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")))
                expected = expected_metadata(metadata, _applied(tree, heads))
                names = set(expected.tables)

                def include(obj: Any, name: str | None, kind: str, reflected: bool, _compare_to: Any) -> bool:
                    table = obj if kind == "table" else getattr(obj, "table", None)
                    table_name = name if kind == "table" else getattr(table, "name", None)
                    # backbone tables (outbox, dedupe, flags, ...) are defined once, in their DDL modules
                    return table_name in names or (kind == "table" and name in {
                        t.name for t in metadata.tables.values()})

                def compare(sync_conn: Any) -> list[Any]:
                    context = MigrationContext.configure(sync_conn, opts={"include_object": include,
                                                                          "compare_type": True})
                    return list(compare_metadata(context, expected))

                return heads, await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.mark.parametrize("tree", sorted(TREES))
def test_every_revision_matches_the_table_definitions(
        tree: str, pg_server: EmbeddedPostgres, make_database: Callable[..., str]) -> None:
    problems = {}
    for i, target in enumerate(_targets(tree)):
        with ThreadPoolExecutor(1) as pool:
            url = pool.submit(upgrade, tree, pg_server.url, target, database=f"drift_{tree}_{i}").result()
        with ThreadPoolExecutor(1) as pool:
            heads, diff = pool.submit(_diff, url, tree).result()
        if diff:
            problems[f"{target} (heads {heads})"] = diff
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
