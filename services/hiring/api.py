"""Hiring HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.db import database_url_for
from eventbus.resources import ServiceResources
from eventbus.webapi import health_router, install_error_handlers
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


def create_app(settings: HiringSettings | None = None) -> FastAPI:
    settings = settings or HiringSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.resources = ServiceResources(
            database_url=database_url_for(settings.database_url, "hiring"),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            registry_url=settings.registry_url, schemas_dir=settings.schemas_dir,
            producer="hiring", routes=ROUTES)
        try:
            yield
        finally:
            await app.state.resources.close()

    app = FastAPI(title="hiring", lifespan=lifespan)
    install_error_handlers(app, REQUEST_FIELDS)
    app.include_router(health_router())

    async def finish(request: Request, task_id: uuid.UUID, body: FinishTask, outcome: Outcome) -> TaskResultOut:
        r: ServiceResources = request.app.state.resources
        result = await handlers.finish_task(r.engine, r.outbox, task_id=task_id, candidate_id=body.candidate_id,
                                            outcome=outcome, rating=body.rating)
        return TaskResultOut(task_id=result.task_id, creator_id=result.creator_id,
                             candidate_id=result.candidate_id, outcome=result.outcome)

    @app.post("/tasks/{task_id}/complete", response_model=TaskResultOut)
    async def complete_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        """404 until the task's TaskCreated has reached hiring; 409 once the task has an outcome."""
        return await finish(request, task_id, body, Outcome.COMPLETED)

    @app.post("/tasks/{task_id}/fail", response_model=TaskResultOut)
    async def fail_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        return await finish(request, task_id, body, Outcome.FAILED)

    @app.get("/tasks/{task_id}", response_model=TaskOut)
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        t = await handlers.get_task(request.app.state.resources.engine, task_id)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       status=t.status, candidate_id=t.candidate_id, rating=t.rating, finished_at=t.finished_at)

    return app
