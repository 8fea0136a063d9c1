"""Every error class a dying or restarting database raises is "the database is down": an API answers 503 with
Retry-After and a body saying what is down (never a 500), and the relay and the consumers retry it in place."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
import sqlalchemy.exc
from fastapi import APIRouter, FastAPI

from eventbus.consumer.errors import Category, classify
from eventbus.failures import DB_UNAVAILABLE, database_unavailable
from eventbus.webapi import install_error_handlers

RAISED: list[BaseException] = [
    ConnectionRefusedError(111, "refused"),
    ConnectionResetError(104, "reset"),
    TimeoutError("timed out"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another server process"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.TargetServerAttributeNotMatched("None of the hosts match the target attribute requirement"),
    asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    sqlalchemy.exc.TimeoutError("QueuePool limit reached, connection timed out"),
    sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
    sqlalchemy.exc.InterfaceError("SELECT 1", {}, asyncpg.ConnectionDoesNotExistError("closed")),
    sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("x"), connection_invalidated=True),
]


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_each_class_is_the_database_being_down(exc: BaseException) -> None:
    assert database_unavailable(exc)
    if isinstance(exc, DB_UNAVAILABLE):
        assert classify(exc).category is Category.RETRIABLE  # consumers block instead of dead-lettering


def test_a_real_data_error_is_not_an_outage() -> None:
    assert not database_unavailable(sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not database_unavailable(ValueError("bug"))


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
async def test_an_api_answers_503_with_retry_after_never_500(exc: BaseException) -> None:
    app = FastAPI()
    install_error_handlers(app, {})
    router = APIRouter()

    @router.post("/write")
    async def write() -> None:
        raise exc

    app.include_router(router)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.post("/write")
    assert r.status_code == 503 and r.headers["retry-after"] == "2"
    assert r.json() == {"detail": "the database is unavailable; nothing was written", "dependency": "database"}
