"""The compatibility engine at its limits: identical schemas, unresolvable references, pathological nesting."""

from __future__ import annotations

import time

from registry.compat import Mode, check, verdict

SELF_CONTRADICTORY = {"type": "string", "enum": [1]}  # accepts nothing; the engine cannot prove S <= S


def test_an_identical_schema_is_compatible_with_itself_whatever_the_engine_can_prove() -> None:
    history = [(1, {"type": "string"}), (2, SELF_CONTRADICTORY)]
    for mode in Mode:
        result = verdict(dict(SELF_CONTRADICTORY), history[1:], mode)
        assert result.compatible, (mode, result.findings)


def nested(keyword: str, depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = {keyword: [leaf]}
    return leaf


def test_a_walk_that_would_take_exponential_time_gives_up_with_a_reason() -> None:
    writer = nested("allOf", 30, {"type": "string"})  # 2^31 comparisons before the budget (seconds: hours)
    reader = {"type": "object", "properties": {"a": {"type": "integer"}}}
    started = time.perf_counter()
    reasons = check(writer, reader)
    assert time.perf_counter() - started < 2
    assert [r.rule for r in reasons] == ["too-complex"]
    assert "gave up after" in reasons[0].message


def test_references_that_do_not_resolve_are_reasons_not_crashes() -> None:
    for ref in ("#/$defs/missing", "#/properties/0", "#anchor", "#/%24defs/x/y/z", "#/type/0"):
        writer = {"type": "object", "properties": {"a": {"$ref": ref}}, "$defs": {"x": {}}}
        reasons = check(writer, {"type": "object", "properties": {"a": {"type": "integer"}}})
        assert reasons and all(r.rule in ("remote-ref", "writer-unconstrained", "type-narrowed") for r in reasons)
    percent_encoded = {"$defs": {"s": {"type": "string"}}, "$ref": "#/%24defs/s"}
    assert check(percent_encoded, {"type": "string"}) == []


def test_a_reference_cycle_through_merged_branches_ends() -> None:
    loop = {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}, {"type": "object"}]}}, "$ref": "#/$defs/a"}
    reasons = check(loop, {"type": "object", "required": ["x"]})
    assert isinstance(reasons, list)  # it answers (coinduction: the cycle is assumed to hold)


def test_deeply_nested_identical_schemas_are_compared() -> None:
    deep = nested("anyOf", 30, {"type": "string"})
    assert check(deep, deep) == []
