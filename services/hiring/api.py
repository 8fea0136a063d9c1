"""Hiring HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
from services.hiring import handlers
from services.hiring.domain import Outcome
from services.hiring.settings import HiringSettings
from services.topology import ROUTES


class FinishTask(BaseModel):
    candidate_id: uuid.UUID
    rating: int | None = Field(default=None, ge=1, le=5, description="optional; emits TaskRating")


class TaskResultOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    candidate_id: uuid.UUID
    outcome: Outcome


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None
    status: str
    candidate_id: uuid.UUID | None
    rating: int | None
    finished_at: datetime | None


REQUEST_FIELDS = {"candidate_id": "candidate_id", "rating": "rating"}


def routes() -> APIRouter:
    router = APIRouter()

    async def finish(request: Request, task_id: uuid.UUID, body: FinishTask, outcome: Outcome) -> TaskResultOut:
        r: ServiceResources = resources_of(request)
        result = await handlers.finish_task(r.engine, r.outbox, task_id=task_id, candidate_id=body.candidate_id,
                                            outcome=outcome, rating=body.rating)
        return TaskResultOut(task_id=result.task_id, creator_id=result.creator_id,
                             candidate_id=result.candidate_id, outcome=result.outcome)

    @router.post("/tasks/{task_id}/complete", response_model=TaskResultOut, responses=responses(404, 409, 422, 503))
    async def complete_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        """404 until the task's TaskCreated has reached hiring; 409 once the task has an outcome."""
        return await finish(request, task_id, body, Outcome.COMPLETED)

    @router.post("/tasks/{task_id}/fail", response_model=TaskResultOut, responses=responses(404, 409, 422, 503))
    async def fail_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        """404 until the task's TaskCreated has reached hiring; 409 once the task has an outcome."""
        return await finish(request, task_id, body, Outcome.FAILED)

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(404, 503))
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        t = await handlers.get_task(resources_of(request).engine, task_id)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       status=t.status, candidate_id=t.candidate_id, rating=t.rating, finished_at=t.finished_at)

    return router


def create_app(settings: HiringSettings | None = None) -> FastAPI:
    settings = settings or HiringSettings()
    return service_app("hiring", routers=[routes()], request_fields=REQUEST_FIELDS,
                       open_resources=lambda: ServiceResources.of(settings, "hiring", producer="hiring", routes=ROUTES))
