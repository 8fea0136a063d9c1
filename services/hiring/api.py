"""Hiring HTTP API: thin routes over `handlers`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel, Field

from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
from services.flags import HIRING as FLAGS
from services.hiring import handlers
from services.hiring.domain import Outcome
from services.hiring.settings import HiringSettings
from services.topology import ROUTES
from services.validation import Rating

#: COMM-060 step 1: GET /tasks/{id}/rating is in this build
CAPABILITIES = ["task.rating_endpoint", "credit.http_client", "task_results.events"]


class FinishTask(BaseModel):
    candidate_id: uuid.UUID
    rating: Rating | None = Field(default=None,
                                  description="completions only; the default rating when absent "
                                              "(HIRING_DEFAULT_RATING)")


class TaskResultOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    candidate_id: uuid.UUID
    outcome: Outcome
    rating: int | None


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None
    status: str
    candidate_id: uuid.UUID | None
    rating: int | None
    finished_at: datetime | None


class RatingOut(BaseModel):
    task_id: uuid.UUID
    status: str
    rating: int | None = Field(description="null until the task is completed")


#: ids per ratings lookup: a bonus worker's batch is at most CONSUMER_BATCH_MAX (500) records
LOOKUP_MAX = 1000


class RatingsLookup(BaseModel):
    task_ids: list[uuid.UUID] = Field(min_length=1, max_length=LOOKUP_MAX)


class RatingsOut(BaseModel):
    ratings: list[RatingOut] = Field(description="the tasks hiring knows, in the order asked (duplicates once)")
    unknown: list[uuid.UUID] = Field(description="the tasks hiring does not know (until their TaskCreated reaches it)")


REQUEST_FIELDS = {"candidate_id": "candidate_id", "rating": "rating"}

FINISH_RESPONSES = responses(404, 409, 422, 503, **{
    "404": "the task is unknown to hiring (until its TaskCreated has reached hiring)",
    "409": "the task already has an outcome (`status` says which), or bonus refused the credit",
    "503": "the credit cannot be made now: bonus is down while credits go over HTTP (`dependency: bonus`), or no "
           "credit path is switched on (`dependency: credit path`); nothing was written, retry"})


def routes(settings: HiringSettings) -> APIRouter:
    router = APIRouter()

    async def finish(request: Request, task_id: uuid.UUID, body: FinishTask, outcome: Outcome) -> TaskResultOut:
        r: ServiceResources = resources_of(request)
        result = await handlers.finish_task(r.engine, r.outbox, r.flags, r.link("bonus"), task_id=task_id,
                                            candidate_id=body.candidate_id, outcome=outcome, rating=body.rating,
                                            default_rating=settings.hiring_default_rating)
        return TaskResultOut(task_id=result.task_id, creator_id=result.creator_id,
                             candidate_id=result.candidate_id, outcome=result.outcome, rating=result.rating)

    @router.post("/tasks/{task_id}/complete", response_model=TaskResultOut, responses=FINISH_RESPONSES)
    async def complete_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        """404 until the task's TaskCreated has reached hiring; 409 once the task has an outcome; 503 when the
        credit cannot be made now (bonus down while credits go over HTTP): nothing was written, retry."""
        return await finish(request, task_id, body, Outcome.COMPLETED)

    @router.post("/tasks/{task_id}/fail", response_model=TaskResultOut, responses=FINISH_RESPONSES)
    async def fail_task(task_id: uuid.UUID, body: FinishTask, request: Request) -> TaskResultOut:
        """As complete; a failed task has no rating."""
        return await finish(request, task_id, body, Outcome.FAILED)

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(404, 422, 503))
    async def get_task(task_id: uuid.UUID, request: Request) -> TaskOut:
        t = await handlers.get_task(resources_of(request).engine, task_id)
        return TaskOut(task_id=t.id, creator_id=t.creator_id, title=t.title, knowledge_area=t.knowledge_area,
                       status=t.status, candidate_id=t.candidate_id, rating=t.rating, finished_at=t.finished_at)

    @router.get("/tasks/{task_id}/rating", response_model=RatingOut, responses=responses(404, 422, 503))
    async def get_rating(task_id: uuid.UUID, request: Request) -> RatingOut:
        """The task's rating (COMM-060: bonus asks this instead of consuming TaskRating)."""
        t = await handlers.get_task(resources_of(request).engine, task_id)
        return RatingOut(task_id=t.id, status=t.status, rating=t.rating)

    @router.post("/task-ratings/lookup", response_model=RatingsOut, responses=responses(422, 503))
    async def lookup_ratings(body: RatingsLookup, request: Request) -> RatingsOut:
        """Many tasks' ratings in one request (COMM-060: the bonus worker asks this once per batch, not once per
        task). A read: POST only because a batch of ids does not fit in a URL."""
        asked = list(dict.fromkeys(body.task_ids))
        known = await handlers.get_ratings(resources_of(request).engine, asked)
        return RatingsOut(ratings=[RatingOut(task_id=t, status=known[t][0], rating=known[t][1])
                                   for t in asked if t in known],
                          unknown=[t for t in asked if t not in known])

    return router


def create_app(settings: HiringSettings | None = None) -> FastAPI:
    settings = settings or HiringSettings()

    def open_resources() -> Any:
        resources = ServiceResources(settings, "hiring", producer="hiring", routes=ROUTES, flags=FLAGS,
                                     links={"bonus": settings.bonus_url}, capabilities=CAPABILITIES)
        return resources.start()

    return service_app("hiring", routers=[routes(settings)], request_fields=REQUEST_FIELDS,
                       open_resources=open_resources)
