"""Bonus HTTP API: balances and ledgers with the manager's details (COMM-070), task ratings (COMM-060), and
POST /credits, the synchronous credit path from hiring (COMM-040 before)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import httpx
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from eventbus.errors import NotFoundError
from eventbus.links import LinkUnavailable
from eventbus.resources import ServiceResources
from eventbus.webapi import responses
from eventbus.webapp import resources_of, service_app
from services.bonus import queries
from services.bonus.directory import ManagerDirectory, ManagerView
from services.bonus.settings import BonusSettings
from services.contracts import split_area_title
from services.flags import BONUS as FLAGS
from services.validation import Rating

CAPABILITIES = ["manager.local_copy", "manager.http_fallback", "credits.endpoint", "rating.from_hiring"]


class ManagerOut(BaseModel):
    """Manager details; `source` says where they come from and `stale` marks a fallback (seed 001)."""

    manager_id: uuid.UUID
    account_id: str | None
    username: str | None
    first_name: str | None
    last_name: str | None
    source: Literal["management-api", "local", "cache", "stub", "local-missing"]
    stale: bool


class BalanceOut(BaseModel):
    manager_id: uuid.UUID
    balance: int
    credits: int
    manager: ManagerOut


class LedgerEntryOut(BaseModel):
    task_id: uuid.UUID
    outcome: str
    amount: int
    rating: int | None
    source: str = Field(description="http (COMM-040 before) or event")
    event_id: uuid.UUID
    created_at: datetime


class LedgerOut(BaseModel):
    manager: ManagerOut
    entries: list[LedgerEntryOut]


class CreditIn(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    candidate_id: uuid.UUID
    outcome: Literal["completed", "failed"]
    rating: Rating | None = Field(default=None, description="required when the outcome is completed (422 otherwise)")


class CreditOut(BaseModel):
    task_id: uuid.UUID
    outcome: str
    amount: int
    created: bool = Field(description="false when this (task, outcome) was already credited: a retry")


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str
    knowledge_area: str | None
    rating: int | None
    #: events (TaskRating), hiring (GET /tasks/{id}/rating), or fallback (hiring down: rating unknown)
    rating_source: Literal["events", "hiring", "fallback"]
    stale: bool


def _manager_out(view: ManagerView) -> ManagerOut:
    return ManagerOut(manager_id=view.manager_id, account_id=view.account_id, username=view.username,
                      first_name=view.first_name, last_name=view.last_name,
                      source=view.source,  # type: ignore[arg-type]
                      stale=view.stale)


def _rating_in(response: httpx.Response) -> int | None:
    """The rating in hiring's answer to GET /tasks/{id}/rating; ValueError when the answer is not one (a proxy's
    page, a body of another shape): bonus then answers with its fallback instead of a 500."""
    body = response.json()  # JSONDecodeError and UnicodeDecodeError are ValueErrors
    rating = body.get("rating") if isinstance(body, dict) else "not an object"
    if rating is None or (isinstance(rating, int) and not isinstance(rating, bool) and 1 <= rating <= 5):
        return rating
    raise ValueError(f"hiring's answer is not a rating: {response.text[:100]!r}")


def routes(settings: BonusSettings) -> APIRouter:
    router = APIRouter()
    rule = settings.credit_rule()

    async def manager_of(request: Request, manager_id: uuid.UUID, credits: int) -> ManagerOut:
        resources: BonusResources = resources_of(request)
        view = await resources.directory.find(manager_id)
        if view is None:
            if credits == 0:
                raise NotFoundError("manager", manager_id)
            view = ManagerView.stub(manager_id, "local-missing")  # credits arrived before the manager
        return _manager_out(view)

    @router.get("/managers/{manager_id}/balance", response_model=BalanceOut, responses=responses(404, 422, 503))
    async def balance(manager_id: uuid.UUID, request: Request) -> BalanceOut:
        """404 for a manager nobody knows; while management is down (COMM-070 before) the manager's details
        come from the last copy or a stub, marked `stale`."""
        b = await queries.balance(resources_of(request).read_engine, manager_id)
        return BalanceOut(manager_id=b.manager_id, balance=b.balance, credits=b.credits,
                          manager=await manager_of(request, manager_id, b.credits))

    @router.get("/managers/{manager_id}/ledger", response_model=LedgerOut, responses=responses(404, 422, 503))
    async def ledger(manager_id: uuid.UUID, request: Request,
                     limit: int = Query(default=100, ge=1, le=1000)) -> LedgerOut:
        rows = await queries.entries(resources_of(request).read_engine, manager_id, limit)
        return LedgerOut(manager=await manager_of(request, manager_id, len(rows)), entries=[
            LedgerEntryOut(task_id=r.task_id, outcome=r.outcome, amount=r.amount, rating=r.rating, source=r.source,
                           event_id=r.event_id, created_at=r.created_at) for r in rows])

    @router.post("/credits", response_model=CreditOut, responses=responses(
        409, 410, 422, 503, **{"409": "the task was already credited with the other outcome",
                               "410": "switched off (COMM-040 step 6): credits come from events"}))
    async def credit(body: CreditIn, request: Request) -> Any:
        """A task outcome credited synchronously (hiring, COMM-040 before). Idempotent per (task, outcome)."""
        r: ServiceResources = resources_of(request)
        if not r.flags.value("bonus.credits_endpoint"):
            return JSONResponse({"detail": "POST /credits is switched off: credits come from TaskCompleted and "
                                           "TaskFailed events (COMM-040)"}, status_code=410)
        done = await queries.credit(r.engine, rule, task_id=body.task_id, creator_id=body.creator_id,
                                    outcome=body.outcome, rating=body.rating)
        return CreditOut(task_id=body.task_id, outcome=body.outcome, amount=done.amount, created=done.created)

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses=responses(404, 422, 503))
    async def task(task_id: uuid.UUID, request: Request) -> TaskOut:
        """A task as bonus knows it, with its rating: from TaskRating events, or asked of hiring; while hiring
        is down the rating is null and marked `rating_source: fallback`."""
        r: ServiceResources = resources_of(request)
        schema = r.schema.ready()
        t = await queries.task(r.engine, task_id, schema.has("tasks", "knowledge_area"))
        area, title = (t.knowledge_area, t.title) if t.knowledge_area else split_area_title(t.title)
        rating: int | None = None
        source: Literal["events", "hiring", "fallback"] = "events"
        stale = False
        if r.flags.value("bonus.rating_source") == "events" and schema.has_table("task_ratings"):
            rating = await queries.stored_rating(r.engine, task_id)
        else:
            link = r.link("hiring")
            try:
                response = await link.request("GET", f"/tasks/{task_id}/rating")
                rating = _rating_in(response) if response.status_code == 200 else None
                source = "hiring"
            except (LinkUnavailable, ValueError):  # down, or answered with something that is not a rating
                link.fell_back()
                rating, source, stale = None, "fallback", True
        return TaskOut(task_id=t.task_id, creator_id=t.creator_id, title=title, knowledge_area=area, rating=rating,
                       rating_source=source, stale=stale)

    return router


class BonusResources(ServiceResources):
    def __init__(self, settings: BonusSettings) -> None:
        super().__init__(settings, "bonus", flags=FLAGS, capabilities=CAPABILITIES,
                         links={"management": settings.management_url, "hiring": settings.hiring_url})
        self.directory = ManagerDirectory(link=self.link("management"), engine=self.engine, flags=self.flags,
                                          schema=self.schema, cache_size=settings.bonus_manager_cache_size)


def create_app(settings: BonusSettings | None = None) -> FastAPI:
    settings = settings or BonusSettings()
    return service_app("bonus", routers=[routes(settings)], open_resources=lambda: BonusResources(settings).start())
