"""Reads behind the bonus API, and the one write it still takes over HTTP (COMM-040 before)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.errors import ConflictError, InvalidInput, NotFoundError
from services.bonus.domain import CreditRule, http_credit_id
from services.bonus.tables import ledger, tasks


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
    rating: int | None
    source: str
    event_id: uuid.UUID
    created_at: datetime


async def balance(engine: AsyncEngine, manager_id: uuid.UUID) -> Balance:
    async with engine.connect() as conn:
        total, count = (await conn.execute(
            select(func.coalesce(func.sum(ledger.c.amount), 0), func.count())
            .where(ledger.c.manager_id == manager_id))).one()
    return Balance(manager_id, int(total), int(count))


async def entries(engine: AsyncEngine, manager_id: uuid.UUID, limit: int) -> list[LedgerEntry]:
    async with engine.connect() as conn:
        rows = (await conn.execute(
            select(ledger.c.task_id, ledger.c.outcome, ledger.c.amount, ledger.c.rating, ledger.c.source,
                   ledger.c.event_id, ledger.c.created_at)
            .where(ledger.c.manager_id == manager_id).order_by(ledger.c.id).limit(limit))).all()
    return [LedgerEntry(*row) for row in rows]


@dataclass(frozen=True)
class TaskRow:
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None


async def task(engine: AsyncEngine, task_id: uuid.UUID, has_area: bool) -> TaskRow:
    columns = [tasks.c.id, tasks.c.creator_id, tasks.c.title] + ([tasks.c.knowledge_area] if has_area else [])
    async with engine.connect() as conn:
        row = (await conn.execute(select(*columns).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFoundError("task", task_id)
    return TaskRow(row.id, row.creator_id, row.title, row._mapping.get("knowledge_area"))


async def stored_rating(engine: AsyncEngine, task_id: uuid.UUID) -> int | None:
    async with engine.connect() as conn:
        rating = await conn.scalar(text("SELECT rating FROM task_ratings WHERE task_id = :t"), {"t": task_id})
    return int(rating) if rating is not None else None


@dataclass(frozen=True)
class Credited:
    created: bool
    amount: int
    event_id: uuid.UUID


_CREDIT = text("""
INSERT INTO ledger (manager_id, task_id, outcome, amount, rating, source, event_id)
VALUES (:manager_id, :task_id, :outcome, :amount, :rating, 'http', :event_id)
ON CONFLICT ON CONSTRAINT ledger_one_credit_per_task_outcome DO NOTHING
RETURNING id
""")


async def credit(engine: AsyncEngine, rule: CreditRule, *, task_id: uuid.UUID, creator_id: uuid.UUID,
                 outcome: str, rating: int | None) -> Credited:
    """COMM-040 before: hiring's completion credits here over HTTP. Idempotent per (task, outcome): a retry
    after a timeout answers what the first call did; another outcome for a credited task is refused."""
    if outcome == "completed" and rating is None:
        raise InvalidInput("rating", "a completed task is credited by its rating", "missing")
    amount = rule.amount(outcome, rating)
    event_id = http_credit_id(task_id, outcome)
    async with engine.begin() as conn:
        other = await conn.scalar(select(ledger.c.outcome).where(ledger.c.task_id == task_id,
                                                                 ledger.c.outcome != outcome))
        if other is not None:
            raise ConflictError(f"task {task_id} was already credited as {other}", task_id=str(task_id),
                                outcome=other)
        inserted = await conn.scalar(_CREDIT, {"manager_id": creator_id, "task_id": task_id, "outcome": outcome,
                                              "amount": amount, "rating": rating, "event_id": event_id})
        if inserted is None:
            existing = (await conn.execute(select(ledger.c.amount, ledger.c.event_id).where(
                ledger.c.task_id == task_id, ledger.c.outcome == outcome))).one()
            return Credited(False, int(existing.amount), existing.event_id)
    return Credited(True, amount, event_id)
