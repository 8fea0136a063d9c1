"""Playbooks as data: what a YAML file says, checked on load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Call:
    """One gate, action or check: a kind (registered in `gates`/`actions`) and its arguments."""

    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind}({shown})"


@dataclass(frozen=True)
class Step:
    number: int
    #: the source document's words (seed 004, in Russian) and their translation
    words: str
    title: str
    gates: tuple[Call, ...] = ()
    actions: tuple[Call, ...] = ()
    checks: tuple[Call, ...] = ()
    #: gates and checks that are not yet true may become true: poll them this long, showing progress
    wait: float = 0.0
    #: why this step cannot be undone (None: its actions' own undo applies, in reverse)
    irreversible: str | None = None
    #: a "code step" (the seed says to change or remove code): what this build has, and what to delete
    code: str | None = None
    note: str | None = None
    #: checked before this step is undone by a rollback (e.g. consumers still accept the version it goes back to)
    undo_gates: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    source: str
    steps: tuple[Step, ...]
    requires: tuple[str, ...] = ()
    summary: str = ""
    digest: str = ""

    def step(self, number: int) -> Step:
        for step in self.steps:
            if step.number == number:
                return step
        raise KeyError(f"{self.name} has no step {number}; its steps: {', '.join(str(s.number) for s in self.steps)}")

    def after(self, number: int) -> list[Step]:
        return [s for s in self.steps if s.number > number]
