"""The compatibility engine at its limits: identical schemas, unresolvable references, pathological nesting."""

from __future__ import annotations

from registry.compat import Mode, verdict

SELF_CONTRADICTORY = {"type": "string", "enum": [1]}  # accepts nothing; the engine cannot prove S <= S


def test_an_identical_schema_is_compatible_with_itself_whatever_the_engine_can_prove() -> None:
    history = [(1, {"type": "string"}), (2, SELF_CONTRADICTORY)]
    for mode in Mode:
        result = verdict(dict(SELF_CONTRADICTORY), history[1:], mode)
        assert result.compatible, (mode, result.findings)
