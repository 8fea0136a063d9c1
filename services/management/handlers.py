"""Commands: each writes the business row and its event in one transaction."""

from __future__ import annotations

import uuid

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.errors import NotFoundError
from eventbus.outbox import OutboxWriter
from services.contracts import split_area_title
from services.management import domain
from services.management.tables import managers, tasks


async def create_manager(
    engine: AsyncEngine, outbox: OutboxWriter, *, first_name: str, last_name: str, account_id: str,
    username: str | None, event_version: int,
) -> domain.Manager:
    manager = domain.Manager(uuid.uuid4(), first_name, last_name, account_id,
                             username or domain.default_username(first_name, last_name))
    async with engine.begin() as conn:
        await conn.execute(insert(managers).values(
            id=manager.id, first_name=first_name, last_name=last_name, username=manager.username,
            account_id=account_id))
        await outbox.add(conn, "ManagerCreated", event_version, domain.manager_created(manager, event_version))
    return manager


async def create_task(
    engine: AsyncEngine, outbox: OutboxWriter, *, creator_id: uuid.UUID, title: str,
    knowledge_area: str | None, event_version: int,
) -> domain.Task:
    area, bare_title = (knowledge_area, title.strip()) if knowledge_area else split_area_title(title)
    task = domain.Task(uuid.uuid4(), creator_id, bare_title, area)
    async with engine.begin() as conn:
        creator = await conn.scalar(select(managers.c.id).where(managers.c.id == creator_id))
        if creator is None:
            raise NotFoundError("manager", creator_id, field="creator_id")
        await conn.execute(insert(tasks).values(
            id=task.id, creator_id=creator_id, title=task.title, knowledge_area=task.knowledge_area))
        await outbox.add(conn, "TaskCreated", event_version, domain.task_created(task, event_version))
    return task


async def get_manager(engine: AsyncEngine, manager_id: uuid.UUID) -> domain.Manager:
    async with engine.connect() as conn:
        row = (await conn.execute(select(managers).where(managers.c.id == manager_id))).first()
    if row is None:
        raise NotFoundError("manager", manager_id)
    return domain.Manager(row.id, row.first_name, row.last_name, row.account_id, row.username)


async def get_task(engine: AsyncEngine, task_id: uuid.UUID) -> domain.Task:
    async with engine.connect() as conn:
        row = (await conn.execute(select(tasks).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFoundError("task", task_id)
    return domain.Task(row.id, row.creator_id, row.title, row.knowledge_area)
