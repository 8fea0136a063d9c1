"""Confluent's compatibility modes over a subject's history, with the reasons of every failed check."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from registry.compat.engine import Policy, Reason, check


class Mode(enum.StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


@dataclass(frozen=True)
class Finding:
    against_version: int
    direction: str  # "backward": the new schema reads old data; "forward": old readers read new data
    reason: Reason

    def as_dict(self) -> dict[str, Any]:
        return {"against_version": self.against_version, "direction": self.direction, **self.reason.as_dict()}

    def message(self) -> str:
        return (f"{self.direction} against version {self.against_version}: {self.reason.location or '/'}: "
                f"{self.reason.message} [{self.reason.rule}]")


@dataclass(frozen=True)
class Verdict:
    mode: Mode
    policy: Policy
    checked_versions: list[int]
    findings: list[Finding] = field(default_factory=list)

    @property
    def compatible(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {"is_compatible": self.compatible, "mode": self.mode.value, "policy": self.policy.value,
                "checked_versions": self.checked_versions, "reasons": [f.as_dict() for f in self.findings],
                "messages": [f.message() for f in self.findings]}


def verdict(new: Any, history: list[tuple[int, Any]], mode: Mode, policy: Policy = Policy.LENIENT) -> Verdict:
    """Check `new` against the subject's live versions `[(version, schema), ...]` (oldest first)."""
    if mode is Mode.NONE or not history:
        return Verdict(mode, policy, [])
    targets = history if mode.transitive else history[-1:]
    findings: list[Finding] = []
    for version, old in targets:
        if _same(old, new):
            continue  # a schema accepts what it accepts: nothing to prove (the engine cannot always show it)
        if mode.backward:
            findings += [Finding(version, "backward", r) for r in check(old, new, policy=policy)]
        if mode.forward:
            findings += [Finding(version, "forward", r) for r in check(new, old, policy=policy)]
    return Verdict(mode, policy, [v for v, _ in targets], findings)


def _same(a: Any, b: Any) -> bool:
    return a is b or json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
