"""Commands: finishing a task writes its new state, and credits the task's creator by the paths the switches
say (COMM-040: bonus's POST /credits inside the transaction, and/or TaskCompleted/TaskFailed through the
outbox; COMM-060: TaskRating through the outbox), all or nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from eventbus.errors import ConflictError, DependencyUnavailable, InvalidInput, NotFoundError
from eventbus.flags.provider import Switches
from eventbus.links import Link
from eventbus.outbox import OutboxWriter
from services.contracts import split_area_title
from services.hiring.domain import Outcome, TaskResult, credit_request, rating_payload, result_payload
from services.hiring.tables import tasks

#: built once: constructing and keying an UPDATE per request cost ~7 % of the API's CPU (py-spy, make bench-api)
_FINISH = (update(tasks).where(tasks.c.id == bindparam("task_key"), tasks.c.status == "open")
           .values(status=bindparam("new_status"), candidate_id=bindparam("new_candidate"),
                   rating=bindparam("new_rating"), finished_at=func.now())
           .returning(tasks.c.creator_id))

SWITCHES = ["hiring.credit_via_http", "hiring.task_result_events", "hiring.task_rating_events"]


async def finish_task(
    engine: AsyncEngine, outbox: OutboxWriter, flags: Switches, bonus: Link, *, task_id: uuid.UUID,
    candidate_id: uuid.UUID, outcome: Outcome, rating: int | None, default_rating: int,
) -> TaskResult:
    if outcome is Outcome.FAILED and rating is not None:
        raise InvalidInput("rating", "only a completed task is rated", "value_error")
    if outcome is Outcome.COMPLETED and rating is None:
        rating = default_rating
    async with engine.begin() as conn:
        # read in the transaction (FOR SHARE): a switch change waits for this completion, so the outbox id
        # where TaskCompleted starts (COMM-040 step 3) is exact
        switches = await flags.in_transaction(conn, SWITCHES)
        if not switches["hiring.credit_via_http"] and not switches["hiring.task_result_events"]:
            raise DependencyUnavailable("credit path", "hiring.credit_via_http and hiring.task_result_events are "
                                        "both off: a completion would credit nobody", retry_after=5)
        creator_id = await _finish(conn, task_id, candidate_id, outcome, rating)
        result = TaskResult(task_id, creator_id, candidate_id, outcome, rating)
        if switches["hiring.credit_via_http"]:
            await _credit_over_http(bonus, result)
        if switches["hiring.task_result_events"]:
            await outbox.add(conn, outcome.event_name, 0, result_payload(result))
        if switches["hiring.task_rating_events"] == "on" and rating is not None:
            await outbox.add(conn, "TaskRating", 0, rating_payload(task_id, rating))
    return result


async def _finish(conn: AsyncConnection, task_id: uuid.UUID, candidate_id: uuid.UUID, outcome: Outcome,
                  rating: int | None) -> uuid.UUID:
    """Move an open task to its outcome (locking it); 404 for an unknown task, 409 once it has an outcome."""
    params = {"task_key": task_id, "new_status": outcome.value, "new_candidate": candidate_id, "new_rating": rating}
    for _ in range(2):
        creator_id = await conn.scalar(_FINISH, params)
        if creator_id is not None:
            return uuid.UUID(str(creator_id))
        status = await conn.scalar(select(tasks.c.status).where(tasks.c.id == task_id))
        if status is None:
            raise NotFoundError("task", task_id)
        if status != "open":
            raise ConflictError(f"task {task_id} is already {status}", task_id=str(task_id), status=status)
        # 'open': the task's row committed (the hiring worker learnt it) after the UPDATE's snapshot was taken
        # but before the SELECT's; the second UPDATE sees it
    raise ConflictError(f"task {task_id} changed while it was being finished; retry", task_id=str(task_id))


async def _credit_over_http(bonus: Link, result: TaskResult) -> None:
    """COMM-040 before: bonus credits in our transaction's lifetime. Its ledger is unique per (task, outcome),
    so a retry after a timeout (our transaction rolled back, bonus's did not) credits once."""
    response = await bonus.request("POST", "/credits", json=credit_request(result))
    if response.status_code == 409:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        raise ConflictError(f"bonus refused the credit: {detail}", task_id=str(result.task_id))
    if response.status_code >= 300:
        raise DependencyUnavailable("bonus", f"POST /credits answered HTTP {response.status_code}: "
                                    f"{response.text[:200]}", retry_after=5)


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


async def get_ratings(engine: AsyncEngine, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int | None]]:
    """task id -> (status, rating) for the ids hiring knows; the others are left out."""
    async with engine.connect() as conn:
        rows = (await conn.execute(select(tasks.c.id, tasks.c.status, tasks.c.rating)
                                   .where(tasks.c.id.in_(task_ids)))).all()
    return {row.id: (row.status, row.rating) for row in rows}


async def get_task(engine: AsyncEngine, task_id: uuid.UUID) -> TaskView:
    columns = [tasks.c.id, tasks.c.creator_id, tasks.c.title, tasks.c.status, tasks.c.candidate_id, tasks.c.rating,
               tasks.c.finished_at]
    async with engine.connect() as conn:
        row = (await conn.execute(select(*columns).where(tasks.c.id == task_id))).first()
    if row is None:
        raise NotFoundError("task", task_id)
    area, bare = split_area_title(row.title)
    return TaskView(row.id, row.creator_id, bare, area, row.status, row.candidate_id, row.rating, row.finished_at)
