"""The credit rule. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass

OUTCOME_OF_EVENT = {"TaskCompleted": "completed", "TaskFailed": "failed"}


@dataclass(frozen=True)
class CreditRule:
    """Points credited to the creator of a task when a candidate completes or fails it.

    One credit per (task, outcome), whatever number of events say so.
    """

    completed: int = 10
    failed: int = 2

    def amount(self, outcome: str) -> int:
        if outcome == "completed":
            return self.completed
        if outcome == "failed":
            return self.failed
        raise ValueError(f"no credit rule for outcome {outcome!r}")
