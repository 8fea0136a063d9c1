"""Reads behind the bonus API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventbus.errors import NotFoundError
from services.bonus.tables import ledger, managers


@dataclass(frozen=True)
class Balance:
    manager_id: uuid.UUID
    balance: int
    credits: int


@dataclass(frozen=True)
class LedgerEntry:
    task_id: uuid.UUID
    outcome: str
    amount: int
    event_id: uuid.UUID
    created_at: datetime


async def balance(engine: AsyncEngine, manager_id: uuid.UUID) -> Balance:
    async with engine.connect() as conn:
        total, count = (await conn.execute(
            select(func.coalesce(func.sum(ledger.c.amount), 0), func.count())
            .where(ledger.c.manager_id == manager_id))).one()
        if count == 0 and not await _known(conn, manager_id):
            raise NotFoundError("manager", manager_id)
    return Balance(manager_id, int(total), int(count))


async def entries(engine: AsyncEngine, manager_id: uuid.UUID, limit: int) -> list[LedgerEntry]:
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(ledger.c.task_id, ledger.c.outcome, ledger.c.amount, ledger.c.event_id, ledger.c.created_at)
            .where(ledger.c.manager_id == manager_id).order_by(ledger.c.id).limit(limit))).all()
        if not rows and not await _known(conn, manager_id):
            raise NotFoundError("manager", manager_id)
    return [LedgerEntry(*row) for row in rows]


async def _known(conn: AsyncConnection, manager_id: uuid.UUID) -> bool:
    """A manager the bonus service has heard of: ManagerCreated arrived (credits may come first)."""
    return await conn.scalar(select(managers.c.id).where(managers.c.id == manager_id)) is not None
