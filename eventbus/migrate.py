"""Alembic, one version tree per database; `python -m eventbus.migrate [db ...]` upgrades to head.

The databases are created first when missing. Each tree's env.py is two lines calling `run_env`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

from alembic import command, context
from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from eventbus.db import ensure_database, sqlalchemy_url, with_database
from eventbus.settings import REPO_ROOT, CommonSettings

log = logging.getLogger(__name__)
ALL_DATABASES = ("management", "hiring", "bonus", "registry", "playbooks")


def run_env(database: str) -> None:
    """Body of migrations/<database>/env.py (online mode, asyncpg)."""
    url = context.config.get_main_option("sqlalchemy.url") or CommonSettings().url_of(database)

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(main())


def alembic_config(tree: str, url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"), ini_section=tree)
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(tree: str, server_url: str, revision: str = "heads", *, database: str | None = None) -> str:
    """Create the database (named like the tree unless `database` says otherwise) if needed, and upgrade
    it with the tree's migrations. Returns its URL. Synchronous: call it outside an event loop."""
    database = database or tree
    asyncio.run(ensure_database(server_url, database))
    url = with_database(server_url, database)
    command.upgrade(alembic_config(tree, url), revision)
    return url


def downgrade(tree: str, url: str, revision: str) -> None:
    command.downgrade(alembic_config(tree, url), revision)


def main() -> None:
    parser = argparse.ArgumentParser(description="Create the databases and run Alembic to every head (the final "
                                                 "state: no playbook gates; `make migrate` starts before them).")
    parser.add_argument("databases", nargs="*", default=list(ALL_DATABASES), help=f"default: {' '.join(ALL_DATABASES)}")
    args = parser.parse_args()
    settings = CommonSettings()
    for database in args.databases:
        upgrade(database, settings.database_url)
        print(f"{database}: at every head")


if __name__ == "__main__":
    main()
