"""The credit rule. No I/O here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

OUTCOME_OF_EVENT = {"TaskCompleted": "completed", "TaskFailed": "failed"}
#: HTTP credits (COMM-040 before) have no event; their id is derived from the fact, so a retry is the same credit
_CREDIT_NAMESPACE = uuid.UUID("6f1d3f0e-0c40-4c04-9a40-000000000040")


@dataclass(frozen=True)
class CreditRule:
    """Points credited to the creator of a task when a candidate completes or fails it.

    A completion earns `completed` points at the neutral rating, `rating_step` more (or fewer) per star above
    (or below) it, never less than 0: with the defaults, ratings 1..5 earn 6, 8, 10, 12, 14. A failure earns
    `failed` points whatever the rating. One credit per (task, outcome), whatever number of events say so.
    """

    completed: int = 10
    failed: int = 2
    rating_step: int = 2
    neutral_rating: int = 3

    def amount(self, outcome: str, rating: int | None = None) -> int:
        if outcome == "completed":
            if rating is None:
                raise ValueError("a completed task is credited by its rating, and it has none")
            return max(0, self.completed + self.rating_step * (rating - self.neutral_rating))
        if outcome == "failed":
            return self.failed
        raise ValueError(f"no credit rule for outcome {outcome!r}")


def http_credit_id(task_id: uuid.UUID, outcome: str) -> uuid.UUID:
    return uuid.uuid5(_CREDIT_NAMESPACE, f"{task_id}:{outcome}")


def lock_key(task_id: str) -> int:
    """A task's advisory-lock key: the first 8 bytes of its uuid as a signed 64-bit integer."""
    if len(task_id) == 36 and task_id[8] == "-" and task_id[13] == "-":  # hyphenated: read the hex digits
        key = int(task_id[:8] + task_id[9:13] + task_id[14:18], 16)
        return key - (1 << 64) if key >= 1 << 63 else key
    return int.from_bytes(uuid.UUID(task_id).bytes[:8], "big", signed=True)


def lock_keys(task_ids: list[str]) -> list[int]:
    """Advisory-lock keys for tasks, sorted (every transaction takes them in one order: no deadlock)."""
    return sorted({lock_key(t) for t in task_ids})
