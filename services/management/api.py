"""Management HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.db import database_url_for
from eventbus.resources import ServiceResources
from eventbus.webapi import health_router, install_error_handlers
from services.management import handlers
from services.management.settings import ManagementSettings
from services.topology import ROUTES


class CreateManager(BaseModel):
    first_name: str = Field(min_length=1, max_length=200)
    last_name: str = Field(min_length=1, max_length=200)
    account_id: str = Field(min_length=1, max_length=100)
    username: str | None = Field(default=None, description="derived from the names when absent")


class ManagerOut(BaseModel):
    manager_id: uuid.UUID
    first_name: str
    last_name: str
    account_id: str
    username: str


class CreateTask(BaseModel):
    creator_id: uuid.UUID
    title: str = Field(min_length=1, max_length=300, description='"[Area] Title", or a bare title with knowledge_area')
    knowledge_area: str | None = Field(default=None, max_length=100)


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None
    old_title: str


#: event payload field -> request field, so a schema violation points at what the caller sent
REQUEST_FIELDS = {"first_name": "first_name", "last_name": "last_name", "account_id": "account_id",
                  "username": "username", "creator_id": "creator_id", "title": "title",
                  "knowledge_area": "knowledge_area"}


def create_app(settings: ManagementSettings | None = None) -> FastAPI:
    settings = settings or ManagementSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = ServiceResources(
            database_url=database_url_for(settings.database_url, "management"),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            registry_url=settings.registry_url, schemas_dir=settings.schemas_dir,
            producer="management", routes=ROUTES)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = FastAPI(title="management", lifespan=lifespan)
    install_error_handlers(app, REQUEST_FIELDS)
    app.include_router(health_router())

    def res(request: Request) -> ServiceResources:
        resources: ServiceResources = request.app.state.resources
        return resources

    @app.post("/managers", status_code=201, response_model=ManagerOut)
    async def create_manager(body: CreateManager, request: Request) -> ManagerOut:
        r = res(request)
        m = await handlers.create_manager(
            r.engine, r.outbox, first_name=body.first_name, last_name=body.last_name,
            account_id=body.account_id, username=body.username, event_version=settings.manager_created_version)
        return ManagerOut(manager_id=m.id, first_name=m.first_name, last_name=m.last_name,
                          account_id=m.account_id, username=m.username)

    @app.get("/managers/{manager_id}", response_model=ManagerOut)
    async def get_manager(manager_id: uuid.UUID, request: Request) -> ManagerOut:
        m = await handlers.get_manager(res(request).engine, manager_id)
        return ManagerOut(manager_id=m.id, first_name=m.first_name, last_name=m.last_name,
                          account_id=m.account_id, username=m.username)

    @app.post("/tasks", status_code=201, response_model=TaskOut)
    async def create_task(body: CreateTask, request: Request) -> TaskOut:
        r = res(request)
        t = await handlers.create_task(r.engine, r.outbox, creator_id=body.creator_id, title=body.title,
                                       knowledge_area=body.knowledge_area,
                                       event_version=settings.task_created_version)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       old_title=t.old_title)

    @app.get("/tasks/{task_id}", response_model=TaskOut)
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        t = await handlers.get_task(res(request).engine, task_id)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       old_title=t.old_title)

    return app
