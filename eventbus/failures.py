"""One classification of "the database is down right now", shared by the relay, the consumers and the APIs.

A dying or restarting PostgreSQL surfaces as many exception classes: refused or reset sockets (OSError),
timeouts, asyncpg's connection errors, "the database system is starting up / shutting down", and
asyncpg's InternalClientError ("cannot switch to state ...") when a connection dies under a pool release;
and, on a replicated database failing over, no writable node yet or a write on a node that is a standby now.
Each is transient: wait and retry (relay, consumers) or answer 503 (APIs); never crash, never dead-letter.
"""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc

DB_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
    # a replicated database mid-failover: no node takes writes yet (asyncpg's TargetServerAttributeNotMatched is
    # an InternalClientError), or a write reached a node that is a standby now
    asyncpg.ReadOnlySQLTransactionError,
)


def database_unavailable(exc: BaseException) -> bool:
    """Is `exc` (or what SQLAlchemy wrapped in it) the database being unreachable?"""
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        original = getattr(exc.orig, "__cause__", None) or exc.orig
        return isinstance(original, DB_UNAVAILABLE) or isinstance(exc.orig, DB_UNAVAILABLE)
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # pool exhausted while connections hang
        return True
    return isinstance(exc, DB_UNAVAILABLE)
