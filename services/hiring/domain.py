"""Task outcomes. No I/O here."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any


class Outcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def event_name(self) -> str:
        return "TaskCompleted" if self is Outcome.COMPLETED else "TaskFailed"


@dataclass(frozen=True)
class TaskResult:
    task_id: uuid.UUID
    creator_id: uuid.UUID
    candidate_id: uuid.UUID
    outcome: Outcome
    #: a completed task always has one (the candidate's, or the default); a failed one has none
    rating: int | None


def result_payload(result: TaskResult) -> dict[str, Any]:
    return {"task_id": str(result.task_id), "creator_id": str(result.creator_id),
            "candidate_id": str(result.candidate_id)}


def rating_payload(task_id: uuid.UUID, rating: int) -> dict[str, Any]:
    return {"task_id": str(task_id), "rating": rating}


def credit_request(result: TaskResult) -> dict[str, Any]:
    """The body of bonus's POST /credits (COMM-040 before): the same facts as the event, plus the rating."""
    return {**result_payload(result), "outcome": result.outcome.value, "rating": result.rating}
