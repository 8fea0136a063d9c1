"""The compatibility engine, table-driven: each case names the property it checks and asserts the
verdict in both directions AND the reasons (rule and location), not just a boolean.

`writer -> reader`: BACKWARD checks old as writer, new as reader; FORWARD the other way round.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jsoncompat  # type: ignore[import-untyped]
import pytest

from registry.compat import Mode, Policy, check, verdict

S = {"type": "string"}
OBJ_A = {"type": "object", "properties": {"a": S}, "required": ["a"]}


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or [], **extra}


@dataclass
class Case:
    name: str
    old: Any
    new: Any
    backward: list[tuple[str, str]]  # (rule, location) expected when new reads old data
    forward: list[tuple[str, str]]   # ... when old reads new data
    policy: Policy = Policy.LENIENT
    crosscheck: bool = True  # compare with jsoncompat (only meaningful under STRICT semantics)
    notes: str = field(default="")


CASES = [
    # --- properties -----------------------------------------------------------------------------
    Case("optional property added: compatible under LENIENT",
         OBJ_A, obj({"a": S, "b": S}, ["a"]), [], [], crosscheck=False),
    Case("optional property added: open model makes it backward-incompatible under STRICT",
         OBJ_A, obj({"a": S, "b": S}, ["a"]), [("property-undeclared-by-open-writer", "/properties/b")], [],
         policy=Policy.STRICT),
    Case("optional unconstrained property added: compatible even under STRICT",
         OBJ_A, obj({"a": S, "b": {}}, ["a"]), [], [], policy=Policy.STRICT),
    Case("required property added",
         OBJ_A, obj({"a": S, "b": S}, ["a", "b"]), [("required-added", "/required")], [], crosscheck=False),
    Case("required property added (STRICT)",
         OBJ_A, obj({"a": S, "b": S}, ["a", "b"]),
         [("property-undeclared-by-open-writer", "/properties/b"), ("required-added", "/required")], [],
         policy=Policy.STRICT),
    Case("property removed: backward-compatible, forward breaks on `required`",
         OBJ_A, obj({}), [], [("required-added", "/required")], crosscheck=False),
    Case("property removed (STRICT): the new open writer may put anything under it, and may omit it",
         OBJ_A, obj({}), [], [("property-undeclared-by-open-writer", "/properties/a"), ("required-added", "/required")],
         policy=Policy.STRICT),
    Case("property removed from a closed reader: forbidden",
         OBJ_A, obj({}, additionalProperties=False),
         [("property-forbidden", "/properties/a"), ("additional-properties-closed", "/additionalProperties")],
         [("required-added", "/required")], policy=Policy.STRICT),
    Case("required removed: loosened",
         OBJ_A, obj({"a": S}), [], [("required-added", "/required")], policy=Policy.STRICT),
    Case("optional property made required",
         obj({"a": S}), OBJ_A, [("required-added", "/required")], [], policy=Policy.STRICT),
    # --- types ------------------------------------------------------------------------------------
    Case("integer widened to number", {"type": "integer"}, {"type": "number"},
         [], [("type-narrowed", "/type")], policy=Policy.STRICT),
    Case("type added to a type list", {"type": "string"}, {"type": ["string", "null"]},
         [], [("type-narrowed", "/type")], policy=Policy.STRICT),
    Case("type changed", {"type": "string"}, {"type": "boolean"},
         [("type-narrowed", "/type")], [("type-narrowed", "/type")], policy=Policy.STRICT),
    Case("number with integer multipleOf reads as integer", {"type": "number", "multipleOf": 2},
         {"type": "integer"}, [], [("multiple-of-tightened", "/multipleOf")], policy=Policy.STRICT,
         crosscheck=False),
    # --- enums ------------------------------------------------------------------------------------
    Case("enum value added", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]},
         [], [("enum-value-rejected", "")], policy=Policy.STRICT),
    Case("enum value removed", {"enum": ["a", "b"]}, {"enum": ["a"]},
         [("enum-value-rejected", "")], [], policy=Policy.STRICT),
    Case("enum introduced on a free string", S, {"type": "string", "enum": ["a"]},
         [("enum-added", "/enum")], [], policy=Policy.STRICT),
    Case("const relaxed to a type", {"const": 1}, {"type": "integer"}, [], [("enum-added", "/const")],
         policy=Policy.STRICT, notes="forward: a const reader rejects every other integer"),
    # --- string keywords --------------------------------------------------------------------------
    Case("maxLength tightened", {"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 5},
         [("max-length-tightened", "/maxLength")], [], policy=Policy.STRICT),
    Case("maxLength added", S, {"type": "string", "maxLength": 5},
         [("max-length-tightened", "/maxLength")], [], policy=Policy.STRICT),
    Case("minLength loosened", {"type": "string", "minLength": 3}, {"type": "string", "minLength": 1},
         [], [("min-length-tightened", "/minLength")], policy=Policy.STRICT),
    Case("pattern added", S, {"type": "string", "pattern": "^a"},
         [("pattern-added-or-changed", "/pattern")], [], policy=Policy.STRICT, crosscheck=False,
         notes="jsoncompat 0.3.1 ignores pattern and calls this compatible, yet the reader rejects 'b'"),
    Case("pattern changed", {"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^b"},
         [("pattern-added-or-changed", "/pattern")], [("pattern-added-or-changed", "/pattern")],
         policy=Policy.STRICT, crosscheck=False, notes="jsoncompat ignores pattern"),
    Case("format added", S, {"type": "string", "format": "uuid"},
         [("format-added-or-changed", "/format")], [], policy=Policy.STRICT, crosscheck=False),
    # --- numbers ----------------------------------------------------------------------------------
    Case("maximum tightened", {"type": "number", "maximum": 10}, {"type": "number", "maximum": 5},
         [("upper-bound-tightened", "/maximum")], [], policy=Policy.STRICT),
    Case("minimum loosened", {"type": "number", "minimum": 5}, {"type": "number", "minimum": 0},
         [], [("lower-bound-tightened", "/minimum")], policy=Policy.STRICT),
    Case("minimum made exclusive at the same value",
         {"type": "number", "minimum": 0}, {"type": "number", "exclusiveMinimum": 0},
         [("lower-bound-tightened", "/exclusiveMinimum")], [], policy=Policy.STRICT),
    Case("over integers, exclusiveMinimum 0 is minimum 1",
         {"type": "integer", "minimum": 1}, {"type": "integer", "exclusiveMinimum": 0}, [], [],
         policy=Policy.STRICT),
    Case("multipleOf tightened", {"type": "number", "multipleOf": 2}, {"type": "number", "multipleOf": 4},
         [("multiple-of-tightened", "/multipleOf")], [], policy=Policy.STRICT),
    Case("multipleOf loosened", {"type": "number", "multipleOf": 4}, {"type": "number", "multipleOf": 2},
         [], [("multiple-of-tightened", "/multipleOf")], policy=Policy.STRICT),
    Case("decimal multipleOf", {"type": "number", "multipleOf": 0.5}, {"type": "number", "multipleOf": 0.25},
         [], [("multiple-of-tightened", "/multipleOf")], policy=Policy.STRICT, crosscheck=False,
         notes="jsoncompat refuses non-integral multipleOf"),
    # --- arrays -----------------------------------------------------------------------------------
    Case("uniqueItems added", {"type": "array"}, {"type": "array", "uniqueItems": True},
         [("unique-items-added", "/uniqueItems")], [], policy=Policy.STRICT),
    Case("maxItems tightened", {"type": "array", "maxItems": 3}, {"type": "array", "maxItems": 2},
         [("max-items-tightened", "/maxItems")], [], policy=Policy.STRICT),
    Case("items narrowed", {"type": "array", "items": {"type": "number"}},
         {"type": "array", "items": {"type": "integer"}},
         [("type-narrowed", "/items/type")], [], policy=Policy.STRICT),
    Case("tuple position narrowed", {"type": "array", "prefixItems": [S, {"type": "number"}]},
         {"type": "array", "prefixItems": [S, {"type": "integer"}]},
         [("type-narrowed", "/prefixItems/1/type")], [], policy=Policy.STRICT),
    # --- objects: content model -----------------------------------------------------------------
    Case("additionalProperties closed (STRICT)", OBJ_A, {**OBJ_A, "additionalProperties": False},
         [("additional-properties-closed", "/additionalProperties")], [], policy=Policy.STRICT),
    Case("additionalProperties closed (LENIENT): writers wrote only what they declared",
         OBJ_A, {**OBJ_A, "additionalProperties": False}, [], [], crosscheck=False),
    Case("additionalProperties schema narrowed",
         {**OBJ_A, "additionalProperties": {"type": "number"}}, {**OBJ_A, "additionalProperties": {"type": "integer"}},
         [("type-narrowed", "/additionalProperties/type")], [], policy=Policy.STRICT),
    Case("closed model gains an optional property (STRICT): compatible",
         {**OBJ_A, "additionalProperties": False}, {**obj({"a": S, "b": S}, ["a"]), "additionalProperties": False},
         [], [("property-forbidden", "/properties/b")], policy=Policy.STRICT),
    Case("minProperties added", obj({}), obj({}, minProperties=1),
         [("min-properties-tightened", "/minProperties")], [], policy=Policy.STRICT),
    # --- nesting and references ---------------------------------------------------------------------
    Case("nested property tightened: located at depth",
         obj({"p": obj({"t": {"type": "string", "maxLength": 9}})}),
         obj({"p": obj({"t": {"type": "string", "maxLength": 3}})}),
         [("max-length-tightened", "/properties/p/properties/t/maxLength")], [], policy=Policy.STRICT),
    Case("local $ref target tightened",
         {"$defs": {"id": {"type": "string"}}, **obj({"x": {"$ref": "#/$defs/id"}})},
         {"$defs": {"id": {"type": "string", "minLength": 2}}, **obj({"x": {"$ref": "#/$defs/id"}})},
         [("min-length-tightened", "/properties/x/minLength")], [], policy=Policy.STRICT, crosscheck=False),
    # --- combinators --------------------------------------------------------------------------------
    Case("anyOf branch added in the reader", {"anyOf": [S]}, {"anyOf": [S, {"type": "number"}]},
         [], [("anyOf-no-branch-fits", "/anyOf"), ("type-narrowed", "/anyOf/0/type")], policy=Policy.STRICT),
    Case("anyOf branch removed", {"anyOf": [S, {"type": "number"}]}, {"anyOf": [S]},
         [("anyOf-no-branch-fits", "/anyOf"), ("type-narrowed", "/anyOf/0/type")], [], policy=Policy.STRICT),
    Case("oneOf branch narrowed", {"oneOf": [S, {"type": "number"}]}, {"oneOf": [S, {"type": "integer"}]},
         [("oneOf-no-branch-fits", "/oneOf"), ("type-narrowed", "/oneOf/0/type")], [], policy=Policy.STRICT),
    Case("plain type becomes a union including it", S, {"anyOf": [S, {"type": "null"}]},
         [], [("type-narrowed", "/type")], policy=Policy.STRICT),
    # --- what cannot be proven is said, not passed -------------------------------------------------
    Case("`not` added", S, {"type": "string", "not": {"const": "x"}},
         [("not-changed", "/not")], [], policy=Policy.STRICT, crosscheck=False),
    Case("unknown keyword changed", {"type": "string", "x-custom": 1}, {"type": "string", "x-custom": 2},
         [("unsupported-keyword", "/x-custom")], [("unsupported-keyword", "/x-custom")], crosscheck=False),
    Case("annotations do not matter", {"type": "string", "description": "a", "title": "A"},
         {"type": "string", "description": "b", "examples": ["z"]}, [], [], policy=Policy.STRICT),
]


def _found(old: Any, new: Any, policy: Policy) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    backward = [(r.rule, r.location) for r in check(old, new, policy=policy)]
    forward = [(r.rule, r.location) for r in check(new, old, policy=policy)]
    return backward, forward


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case) -> None:
    backward, forward = _found(case.old, case.new, case.policy)
    assert backward == case.backward, "backward (new reads old data)"
    assert forward == case.forward, "forward (old reads new data)"


@pytest.mark.parametrize("case", [c for c in CASES if c.crosscheck and c.policy is Policy.STRICT],
                         ids=[c.name for c in CASES if c.crosscheck and c.policy is Policy.STRICT])
def test_verdicts_agree_with_jsoncompat(case: Case) -> None:
    """An independent implementation (jsoncompat, open-content semantics = our STRICT) agrees."""
    old, new = json.dumps(case.old), json.dumps(case.new)
    assert jsoncompat.check_compat(old, new, "deserializer") == (case.backward == []), "backward"
    assert jsoncompat.check_compat(old, new, "serializer") == (case.forward == []), "forward"


def test_reasons_say_what_changed() -> None:
    [reason] = check({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 5})
    assert reason.message == "maxLength tightened from 10 to 5"
    [reason] = check(OBJ_A, obj({"a": S, "b": S}, ["a", "b"]))
    assert "'b' is required by the reader but not by the writer" in reason.message


def test_identity_discriminators_are_not_content() -> None:
    def env(version: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        meta = obj({"event_version": {"enum": [version]}, "event_name": {"enum": ["E"]}, **(extra or {})})
        return obj({"meta": meta, "payload": obj({"x": S})})

    assert check(env(0), env(1)) == []
    assert check(env(0), env(1, {"trace": {"type": "integer"}}), policy=Policy.STRICT) != []
    pinned_elsewhere = obj({"payload": obj({"event_version": {"enum": [0]}})})
    moved = obj({"payload": obj({"event_version": {"enum": [1]}})})
    assert [r.rule for r in check(pinned_elsewhere, moved)] == ["enum-value-rejected"]


def test_recursive_schemas_terminate() -> None:
    tree = {"$defs": {"node": obj({"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}})},
            "$ref": "#/$defs/node"}
    assert check(tree, tree) == []


def test_modes_choose_directions_and_versions() -> None:
    v1, v2 = OBJ_A, obj({"a": S, "b": S}, ["a"])
    v3 = obj({"b": S}, ["b"])  # drops a, requires b
    history = [(1, v1), (2, v2)]
    assert verdict(v3, history, Mode.BACKWARD).checked_versions == [2]
    assert verdict(v3, history, Mode.BACKWARD_TRANSITIVE).checked_versions == [1, 2]
    backward = verdict(v3, history, Mode.BACKWARD_TRANSITIVE)
    assert not backward.compatible
    assert {(f.against_version, f.reason.rule) for f in backward.findings} == {(1, "required-added"),
                                                                              (2, "required-added")}
    assert {f.direction for f in verdict(v3, history, Mode.FULL).findings} == {"backward", "forward"}
    assert verdict(v3, history, Mode.NONE).compatible
    assert verdict(v3, [], Mode.FULL_TRANSITIVE).compatible
