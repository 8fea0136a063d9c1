"""Commands: finishing a task writes its new state and its events in one transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.errors import ConflictError, NotFoundError
from eventbus.outbox import OutboxWriter
from services.hiring.domain import Outcome, TaskResult, rating_payload, result_payload
from services.hiring.tables import tasks


async def finish_task(
    engine: AsyncEngine, outbox: OutboxWriter, *, task_id: uuid.UUID, candidate_id: uuid.UUID,
    outcome: Outcome, rating: int | None,
) -> TaskResult:
    async with engine.begin() as conn:
        creator_id = await conn.scalar(
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.status == "open")
            .values(status=outcome.value, candidate_id=candidate_id, rating=rating, finished_at=func.now())
            .returning(tasks.c.creator_id))
        if creator_id is None:
            status = await conn.scalar(select(tasks.c.status).where(tasks.c.id == task_id))
            if status is None:
                raise NotFoundError("task", task_id)
            raise ConflictError(f"task {task_id} is already {status}", task_id=str(task_id), status=status)
        result = TaskResult(task_id, creator_id, candidate_id, outcome)
        await outbox.add(conn, outcome.event_name, 0, result_payload(result))
        if rating is not None:
            await outbox.add(conn, "TaskRating", 0, rating_payload(task_id, rating))
    return result


@dataclass(frozen=True)
class TaskView:
    id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None
    status: str
    candidate_id: uuid.UUID | None
    rating: int | None
    finished_at: datetime | None


async def get_task(engine: AsyncEngine, task_id: uuid.UUID) -> TaskView:
    columns = [tasks.c[f.name] for f in fields(TaskView)]
    async with engine.connect() as conn:
        row = (await conn.execute(select(*columns).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFoundError("task", task_id)
    return TaskView(*row)
