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


def hosts_of(url: str) -> list[tuple[str, int]]:
    """Every host:port of a database URL: one, or several for a replicated server
    (`postgresql://u@h1:p1,h2:p2/db?target_session_attrs=read-write`, libpq's and asyncpg's form)."""
    netloc = urlsplit(url).netloc.rpartition("@")[2]
    found = []
    for server in netloc.split(","):
        host, sep, port = server.rpartition(":")
        if not sep or not port.isdigit() or host.endswith(":"):  # no port, or a bare IPv6 address
            host, port = server, "5432"
        found.append((host.strip("[]") or "127.0.0.1", int(port)))
    return found


def sqlalchemy_url(url: str) -> str:
    """The URL for SQLAlchemy's asyncpg dialect. A multi-host URL becomes its `?host=h1:p1&host=h2:p2` form
    (SQLAlchemy does not parse a host list in the authority); other query parameters, such as
    `target_session_attrs`, reach asyncpg as they are."""
    rest = plain_url(url).partition("://")[2]
    parts = urlsplit("postgresql://" + rest)
    if "," not in parts.netloc:
        return "postgresql+asyncpg://" + rest
    userinfo, _, _ = parts.netloc.rpartition("@")
    hosts = "&".join(f"host={host}:{port}" for host, port in hosts_of(url))
    query = hosts + ("&" + parts.query if parts.query else "")
    return urlunsplit(("postgresql+asyncpg", (userinfo + "@") if userinfo else "", parts.path, query, ""))


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
