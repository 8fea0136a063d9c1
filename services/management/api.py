"""Management HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
from services.flags import MANAGEMENT as FLAGS
from services.management import domain, handlers
from services.management.settings import ManagementSettings
from services.topology import ROUTES
from services.validation import Text

#: what this build can do, whatever the switches say (playbooks' "code steps" check every instance has it)
CAPABILITIES = ["task.old_title", "manager.username", "manager.created_events"]


class CreateManager(BaseModel):
    """Names (management.manager_fields names or names+username), or a username (username: names are refused)."""

    model_config = {"json_schema_extra": {"anyOf": [{"required": ["first_name", "last_name"]},
                                                    {"required": ["username"]}]}}
    first_name: Text | None = Field(default=None, min_length=1, max_length=200,
                                    description="required until management.manager_fields is 'username'")
    last_name: Text | None = Field(default=None, min_length=1, max_length=200)
    account_id: Text = Field(min_length=1, max_length=100)
    username: Text | None = Field(default=None, max_length=64, json_schema_extra={"pattern": domain.USERNAME.pattern},
                                  description=f"{domain.USERNAME_RULE}; derived from the names when absent")


class ManagerOut(BaseModel):
    manager_id: uuid.UUID
    account_id: str
    username: str | None = Field(description="null until US-170 gives managers a username")
    first_name: str | None = Field(description="null once names are no longer shown (US-170)")
    last_name: str | None


class CreateTask(BaseModel):
    creator_id: uuid.UUID
    title: Text = Field(min_length=1, max_length=300, description='"[Area] Title", or a bare title with knowledge_area')
    knowledge_area: Text | None = Field(default=None, min_length=1, max_length=100)


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str = Field(description="the title without its area")
    knowledge_area: str | None
    old_title: str = Field(description='"[Area] Title" (US-160 step 3)')


#: event payload field -> request field, so a schema violation points at what the caller sent
REQUEST_FIELDS = {"first_name": "first_name", "last_name": "last_name", "account_id": "account_id",
                  "username": "username", "creator_id": "creator_id", "title": "title",
                  "knowledge_area": "knowledge_area"}


def _manager_out(m: domain.Manager, fields: str) -> ManagerOut:
    names = fields != "username"
    return ManagerOut(manager_id=m.id, account_id=m.account_id, username=m.username,
                      first_name=m.first_name if names else None, last_name=m.last_name if names else None)


def _task_out(t: domain.Task) -> TaskOut:
    return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                   old_title=t.old_title)


def routes() -> APIRouter:
    router = APIRouter()

    @router.post("/managers", status_code=201, response_model=ManagerOut, responses=responses(422, 503))
    async def create_manager(body: CreateManager, request: Request) -> ManagerOut:
        r: ServiceResources = resources_of(request)
        m = await handlers.create_manager(
            r.engine, r.outbox, r.flags, r.schema, first_name=body.first_name, last_name=body.last_name,
            account_id=body.account_id, username=body.username)
        return _manager_out(m, r.flags.value("management.manager_fields"))

    @router.get("/managers/{manager_id}", response_model=ManagerOut, responses=responses(404, 422, 503))
    async def get_manager(manager_id: uuid.UUID, request: Request) -> ManagerOut:
        r: ServiceResources = resources_of(request)
        fields = r.flags.value("management.manager_fields")
        return _manager_out(await handlers.get_manager(r.engine, r.schema, fields, manager_id), fields)

    @router.post("/tasks", status_code=201, response_model=TaskOut, responses=responses(404, 422, 503))
    async def create_task(body: CreateTask, request: Request) -> TaskOut:
        r: ServiceResources = resources_of(request)
        return _task_out(await handlers.create_task(r.engine, r.outbox, r.flags, r.schema, creator_id=body.creator_id,
                                                    title=body.title, knowledge_area=body.knowledge_area))

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(404, 422, 503))
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        r: ServiceResources = resources_of(request)
        return _task_out(await handlers.get_task(r.engine, r.schema, task_id))

    return router


def create_app(settings: ManagementSettings | None = None) -> FastAPI:
    settings = settings or ManagementSettings()

    def open_resources() -> Any:
        resources = ServiceResources(settings, "management", producer="management", routes=ROUTES, flags=FLAGS,
                                     capabilities=CAPABILITIES)
        resources.control.report = lambda: {**resources.report(), "produces": {
            "ManagerCreated": resources.flags.value(handlers.MANAGER_VERSION),
            "TaskCreated": resources.flags.value(handlers.TASK_VERSION)}}
        return resources.start()

    return service_app("management", routers=[routes()], request_fields=REQUEST_FIELDS, open_resources=open_resources)
