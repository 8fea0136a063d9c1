"""The framework's own ceiling for `make bench-api`: uvicorn + FastAPI + pydantic as the services run them, one
`POST /tasks` that parses a task's body and answers 201 with no database and no outbox. The write routes' rate
divided by this one says how much of a request is the framework and how much is the work.

    NOOP_PORT=8000 python -m tests.bench.api_noop
"""

from __future__ import annotations

import os
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

app = FastAPI()


class CreateTask(BaseModel):
    creator_id: uuid.UUID
    title: str = Field(min_length=1, max_length=300)


class TaskOut(BaseModel):
    task_id: uuid.UUID
    creator_id: uuid.UUID
    title: str


@app.post("/tasks", status_code=201)
async def create_task(body: CreateTask) -> TaskOut:
    return TaskOut(task_id=uuid.uuid4(), creator_id=body.creator_id, title=body.title)


@app.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["NOOP_PORT"]), log_level="warning", access_log=False,
                log_config=None)
