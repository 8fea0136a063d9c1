"""Database URLs and engines. Nothing here connects at import time."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def database_url_for(server_url: str, database: str, overrides: Mapping[str, str] | None = None) -> str:
    """The URL of `database` on the server `server_url` points at, unless `overrides` (an operator command's
    environment) names its own with `<DATABASE>_DATABASE_URL`. Processes use `CommonSettings.url_of`."""
    override = (overrides or {}).get(f"{database.upper()}_DATABASE_URL")
    return override or with_database(server_url, database)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def plain_url(url: str) -> str:
    """`postgresql://...` for asyncpg, whatever driver suffix the URL carries."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def sqlalchemy_url(url: str) -> str:
    return "postgresql+asyncpg://" + plain_url(url).partition("://")[2]


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=300,
    )


async def ensure_database(server_url: str, database: str) -> bool:
    """Create `database` on the server if it is missing. Returns True when it was created."""
    conn = await asyncpg.connect(plain_url(with_database(server_url, "postgres")), timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        # CREATE DATABASE cannot take a bind parameter; the name comes from our own topology, quoted anyway.
        await conn.execute(f'CREATE DATABASE "{database}"')
        return True
    finally:
        await conn.close()
