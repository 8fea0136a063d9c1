"""Bonus HTTP API: balances and ledgers (read-only; credits come from events)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel

from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
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


def routes() -> APIRouter:
    router = APIRouter()

    @router.get("/managers/{manager_id}/balance", response_model=BalanceOut, responses=responses(404, 503))
    async def balance(manager_id: uuid.UUID, request: Request) -> BalanceOut:
        b = await queries.balance(resources_of(request).engine, manager_id)
        return BalanceOut(manager_id=b.manager_id, balance=b.balance, credits=b.credits)

    @router.get("/managers/{manager_id}/ledger", response_model=list[LedgerEntryOut], responses=responses(404, 503))
    async def ledger(manager_id: uuid.UUID, request: Request,
                     limit: int = Query(default=100, ge=1, le=1000)) -> list[LedgerEntryOut]:
        rows = await queries.entries(resources_of(request).engine, manager_id, limit)
        return [LedgerEntryOut(task_id=r.task_id, outcome=r.outcome, amount=r.amount, event_id=r.event_id,
                               created_at=r.created_at) for r in rows]

    return router


def create_app(settings: BonusSettings | None = None) -> FastAPI:
    settings = settings or BonusSettings()
    return service_app("bonus", routers=[routes()], open_resources=lambda: ServiceResources.of(settings, "bonus"))
