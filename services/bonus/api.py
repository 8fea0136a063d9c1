"""Bonus HTTP API: balances and ledgers (read-only; credits come from events)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Query, Request
from pydantic import BaseModel

from eventbus.db import database_url_for
from eventbus.resources import ServiceResources
from eventbus.webapi import health_router, install_error_handlers
from services.bonus import queries
from services.bonus.settings import BonusSettings


class BalanceOut(BaseModel):
    manager_id: uuid.UUID
    balance: int
    credits: int


class LedgerEntryOut(BaseModel):
    task_id: uuid.UUID
    outcome: str
    amount: int
    event_id: uuid.UUID
    created_at: datetime


def create_app(settings: BonusSettings | None = None) -> FastAPI:
    settings = settings or BonusSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = ServiceResources(
            database_url=database_url_for(settings.database_url, "bonus"),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            registry_url=settings.registry_url, schemas_dir=settings.schemas_dir)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(title="bonus", lifespan=lifespan)
    install_error_handlers(app, {})
    app.include_router(health_router())

    @app.get("/managers/{manager_id}/balance", response_model=BalanceOut)
    async def balance(manager_id: uuid.UUID, request: Request) -> BalanceOut:
        b = await queries.balance(request.app.state.resources.engine, manager_id)
        return BalanceOut(manager_id=b.manager_id, balance=b.balance, credits=b.credits)

    @app.get("/managers/{manager_id}/ledger", response_model=list[LedgerEntryOut])
    async def ledger(manager_id: uuid.UUID, request: Request,
                     limit: int = Query(default=100, ge=1, le=1000)) -> list[LedgerEntryOut]:
        rows = await queries.entries(request.app.state.resources.engine, manager_id, limit)
        return [LedgerEntryOut(task_id=r.task_id, outcome=r.outcome, amount=r.amount, event_id=r.event_id,
                               created_at=r.created_at) for r in rows]

    return app
