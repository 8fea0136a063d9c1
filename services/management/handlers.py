"""Commands: each writes the business row and its event in one transaction. What is stored and emitted
follows the switches (read in the transaction for the event version, so the cut-over is exact) and the
columns the database has now (US-160 and US-170 add and drop some)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from eventbus.control import SchemaState
from eventbus.errors import InvalidInput, NotFoundError
from eventbus.flags.provider import Switches
from eventbus.outbox import OutboxWriter
from services.contracts import split_area_title
from services.management import domain
from services.management.tables import managers, tasks

MANAGER_VERSION = "management.manager_created_version"
TASK_VERSION = "management.task_created_version"


def _existing(schema: SchemaState, table: Any, names: list[str]) -> list[Any]:
    return [table.c[n] for n in names if schema.ready().has(table.name, n)]


async def create_manager(
    engine: AsyncEngine, outbox: OutboxWriter, flags: Switches, schema: SchemaState, *,
    first_name: str | None, last_name: str | None, account_id: str, username: str | None,
) -> domain.Manager:
    fields = flags.value("management.manager_fields")
    if fields == "username":
        for name, value in (("first_name", first_name), ("last_name", last_name)):
            if value is not None:
                raise InvalidInput(name, "names are no longer taken (US-170 anonymisation): send username only",
                                   "value_error.retired")
        if username is None:
            raise InvalidInput("username", "required", "missing")
    else:
        for name, value in (("first_name", first_name), ("last_name", last_name)):
            if value is None:
                raise InvalidInput(name, "required", "missing")
    if username is not None:
        domain.check_username(username)
    elif first_name is not None and last_name is not None:
        username = domain.default_username(first_name, last_name)
    manager = domain.Manager(uuid.uuid4(), account_id, first_name, last_name, username)
    schema.ready()
    async with engine.begin() as conn:
        version = (await flags.in_transaction(conn, [MANAGER_VERSION]))[MANAGER_VERSION]
        row: dict[str, Any] = {"id": manager.id, "account_id": account_id}
        for column in ("first_name", "last_name", "username"):
            if schema.has("managers", column) and getattr(manager, column) is not None:
                row[column] = getattr(manager, column)
        await conn.execute(insert(managers).values(**row))
        if version is not None:
            await outbox.add(conn, "ManagerCreated", version, domain.manager_created(manager, version))
    stored_username = manager.username if schema.has("managers", "username") else None
    return domain.Manager(manager.id, account_id, first_name, last_name, stored_username)


#: built once (constructing and keying statements per request is a measurable share of an API's CPU)
_CREATOR = select(managers.c.id).where(managers.c.id == bindparam("creator_key"))
_INSERT_TASK = insert(tasks)


async def create_task(
    engine: AsyncEngine, outbox: OutboxWriter, flags: Switches, schema: SchemaState, *,
    creator_id: uuid.UUID, title: str, knowledge_area: str | None,
) -> domain.Task:
    if knowledge_area is not None:
        area: str | None = knowledge_area.strip()
        bare = title.strip()
        if not area or "[" in area or "]" in area:
            raise InvalidInput("knowledge_area", "must be non-blank and hold no '[' or ']'", "value_error")
    else:
        area, bare = split_area_title(title)
    if not bare:
        raise InvalidInput("title", "is blank", "value_error")
    task = domain.Task(uuid.uuid4(), creator_id, bare, area)
    split = flags.value("management.task_titles") == "split" and schema.ready().has("tasks", "knowledge_area")
    async with engine.begin() as conn:
        creator = await conn.scalar(_CREATOR, {"creator_key": creator_id})
        if creator is None:
            raise NotFoundError("manager", creator_id, field="creator_id")
        version = (await flags.in_transaction(conn, [TASK_VERSION]))[TASK_VERSION]
        row = ({"title": task.title, "knowledge_area": task.knowledge_area} if split else {"title": task.old_title})
        await conn.execute(_INSERT_TASK, {"id": task.id, "creator_id": creator_id, **row})
        await outbox.add(conn, "TaskCreated", version, domain.task_created(task, version))
    return task


async def get_manager(engine: AsyncEngine, schema: SchemaState, fields: str, manager_id: uuid.UUID) -> domain.Manager:
    wanted = ["username"] if fields == "username" else ["first_name", "last_name", "username"]
    columns = [managers.c.id, managers.c.account_id, *_existing(schema, managers, wanted)]
    async with engine.connect() as conn:
        row = (await conn.execute(select(*columns).where(managers.c.id == manager_id))).first()
    if row is None:
        raise NotFoundError("manager", manager_id)
    found = row._mapping
    return domain.Manager(row.id, row.account_id, found.get("first_name"), found.get("last_name"),
                          found.get("username"))


async def get_task(engine: AsyncEngine, schema: SchemaState, task_id: uuid.UUID) -> domain.Task:
    columns = [tasks.c.id, tasks.c.creator_id, tasks.c.title, *_existing(schema, tasks, ["knowledge_area"])]
    async with engine.connect() as conn:
        row = (await conn.execute(select(*columns).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFoundError("task", task_id)
    return domain.Task.stored(row.id, row.creator_id, row.title, row._mapping.get("knowledge_area"))
