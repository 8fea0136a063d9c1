"""The compatibility rules that are plain comparisons of one keyword, declared as data.

Each rule says which instance type the keyword constrains and how the reader's value may relate to
the writer's without rejecting something the writer allows (Karapace's `AssertionCheck` idea, with
the checks it misses: multipleOf, uniqueItems, format, and required, which the engine handles).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Relation(enum.Enum):
    UPPER = "upper bound: the reader's must be >= the writer's (absent = unbounded)"
    LOWER = "lower bound: the reader's must be <= the writer's (absent = 0)"
    DIVISOR = "the writer's multipleOf must be a multiple of the reader's"
    FLAG = "a reader's true needs the writer's true"
    SAME_OR_DROPPED = "the reader may drop it, or keep it equal; anything else cannot be proven"


@dataclass(frozen=True)
class KeywordRule:
    keyword: str
    applies_to: str  # the instance type the keyword constrains
    relation: Relation
    rule: str  # the name reasons carry


KEYWORD_RULES: tuple[KeywordRule, ...] = (
    KeywordRule("maxLength", "string", Relation.UPPER, "max-length-tightened"),
    KeywordRule("minLength", "string", Relation.LOWER, "min-length-tightened"),
    KeywordRule("pattern", "string", Relation.SAME_OR_DROPPED, "pattern-added-or-changed"),
    KeywordRule("format", "string", Relation.SAME_OR_DROPPED, "format-added-or-changed"),
    KeywordRule("contentEncoding", "string", Relation.SAME_OR_DROPPED, "content-encoding-changed"),
    KeywordRule("multipleOf", "number", Relation.DIVISOR, "multiple-of-tightened"),
    KeywordRule("maxItems", "array", Relation.UPPER, "max-items-tightened"),
    KeywordRule("minItems", "array", Relation.LOWER, "min-items-tightened"),
    KeywordRule("uniqueItems", "array", Relation.FLAG, "unique-items-added"),
    KeywordRule("contains", "array", Relation.SAME_OR_DROPPED, "contains-added-or-changed"),
    KeywordRule("minContains", "array", Relation.SAME_OR_DROPPED, "min-contains-changed"),
    KeywordRule("maxContains", "array", Relation.SAME_OR_DROPPED, "max-contains-changed"),
    KeywordRule("maxProperties", "object", Relation.UPPER, "max-properties-tightened"),
    KeywordRule("minProperties", "object", Relation.LOWER, "min-properties-tightened"),
    KeywordRule("patternProperties", "object", Relation.SAME_OR_DROPPED, "pattern-properties-changed"),
    KeywordRule("propertyNames", "object", Relation.SAME_OR_DROPPED, "property-names-changed"),
    KeywordRule("dependentRequired", "object", Relation.SAME_OR_DROPPED, "dependent-required-changed"),
    KeywordRule("dependentSchemas", "object", Relation.SAME_OR_DROPPED, "dependent-schemas-changed"),
    KeywordRule("unevaluatedProperties", "object", Relation.SAME_OR_DROPPED, "unevaluated-properties-changed"),
    KeywordRule("unevaluatedItems", "array", Relation.SAME_OR_DROPPED, "unevaluated-items-changed"),
)

#: Keywords that say something about the schema, not about which instances it accepts.
ANNOTATIONS = frozenset({
    "$schema", "$id", "$anchor", "$dynamicAnchor", "$comment", "$defs", "definitions", "$vocabulary",
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
    "contentMediaType", "contentSchema",
})

#: Keywords the engine reasons about structurally (engine.py), plus the data rules above.
STRUCTURAL = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items", "prefixItems",
    "anyOf", "oneOf", "allOf", "not", "if", "then", "else", "$ref", "$dynamicRef",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
})

KNOWN = ANNOTATIONS | STRUCTURAL | {r.keyword for r in KEYWORD_RULES}
