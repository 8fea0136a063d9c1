"""Management HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
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


def routes(settings: ManagementSettings) -> APIRouter:
    router = APIRouter()

    @router.post("/managers", status_code=201, response_model=ManagerOut, responses=responses(422, 503))
    async def create_manager(body: CreateManager, request: Request) -> ManagerOut:
        r: ServiceResources = resources_of(request)
        m = await handlers.create_manager(
            r.engine, r.outbox, first_name=body.first_name, last_name=body.last_name,
            account_id=body.account_id, username=body.username, event_version=settings.manager_created_version)
        return ManagerOut(manager_id=m.id, first_name=m.first_name, last_name=m.last_name,
                          account_id=m.account_id, username=m.username)

    @router.get("/managers/{manager_id}", response_model=ManagerOut, responses=responses(404, 503))
    async def get_manager(manager_id: uuid.UUID, request: Request) -> ManagerOut:
        m = await handlers.get_manager(resources_of(request).engine, manager_id)
        return ManagerOut(manager_id=m.id, first_name=m.first_name, last_name=m.last_name,
                          account_id=m.account_id, username=m.username)

    @router.post("/tasks", status_code=201, response_model=TaskOut, responses=responses(404, 422, 503))
    async def create_task(body: CreateTask, request: Request) -> TaskOut:
        r: ServiceResources = resources_of(request)
        t = await handlers.create_task(r.engine, r.outbox, creator_id=body.creator_id, title=body.title,
                                       knowledge_area=body.knowledge_area,
                                       event_version=settings.task_created_version)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       old_title=t.old_title)

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(404, 503))
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        t = await handlers.get_task(resources_of(request).engine, task_id)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       old_title=t.old_title)

    return router


def create_app(settings: ManagementSettings | None = None) -> FastAPI:
    settings = settings or ManagementSettings()
    return service_app(
        "management", routers=[routes(settings)], request_fields=REQUEST_FIELDS,
        open_resources=lambda: ServiceResources.of(settings, "management", producer="management", routes=ROUTES))
