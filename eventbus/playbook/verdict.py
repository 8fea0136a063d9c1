"""What a gate answers: pass, fail, or cannot tell (missing data is never a pass), with evidence and the fix."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNKNOWN = "cannot tell"


@dataclass(frozen=True)
class GateResult:
    gate: str
    verdict: Verdict
    #: what was measured, as facts a reader can check ("2 of 2 live bonus workers accept v2: ...")
    evidence: str
    #: what to do when it does not pass
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def as_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "verdict": self.verdict.value, "evidence": self.evidence, "fix": self.fix,
                **({"data": self.data} if self.data else {})}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> GateResult:
        return cls(body["gate"], Verdict(body["verdict"]), body.get("evidence", ""), body.get("fix", ""),
                   body.get("data", {}))


def passed(gate: str, evidence: str, **data: Any) -> GateResult:
    return GateResult(gate, Verdict.PASS, evidence, data=data)


def failed(gate: str, evidence: str, fix: str, **data: Any) -> GateResult:
    return GateResult(gate, Verdict.FAIL, evidence, fix, data=data)


def unknown(gate: str, evidence: str, fix: str, **data: Any) -> GateResult:
    return GateResult(gate, Verdict.UNKNOWN, evidence, fix, data=data)
