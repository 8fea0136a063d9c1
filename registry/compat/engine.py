"""Does the reader schema accept every instance the writer schema allows? If not, why, and where.

The walk compares the two schemas position by position. Locations in reasons are JSON pointers into
the schemas (the reader's position; the writer's for things only the writer has). What cannot be
proven on the supported subset is reported as a reason, never silently passed.

Policies, for objects:
- STRICT: a schema without `additionalProperties: false` is an open content model: a writer may have
  put anything under an undeclared name. Then adding a constrained property is incompatible and
  removing one is compatible (the classic open-model rule; closed models give the reverse).
- LENIENT (our default): writers put only the properties their schema declares. Both "add an optional
  property" (ManagerCreated v1) and "remove a property" (v2) are then compatible; adding a *required*
  property, or closing a reader to a property the writer declares, still is not.

Identity: each version pins `meta.event_version` (and `meta.event_name`) with a one-value enum, as
seed 004 writes them. Consumers dispatch on these before validating, so they identify the version
rather than constrain its content: the positions in IDENTITY_PATHS are not compared (the registry
checks them separately: same event name as the subject, a new version number).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from urllib.parse import unquote

import jsonschema
from referencing.exceptions import Unresolvable

from registry.compat.rules import ANNOTATIONS, KEYWORD_RULES, KNOWN, KeywordRule, Relation

IDENTITY_PATHS = frozenset({"/properties/meta/properties/event_version", "/properties/meta/properties/event_name"})
#: Positions one `check` compares before it gives up (unions and intersections nested in each other can make
#: the walk exponential; real schemas take tens). A few µs each: a tenth of a second at worst.
MAX_STEPS = 20_000
ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
Schema = Any  # dict or bool


class Policy(enum.StrEnum):
    LENIENT = "LENIENT"
    STRICT = "STRICT"


@dataclass(frozen=True)
class Reason:
    rule: str
    location: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "location": self.location or "/", "message": self.message}


def check(writer: Schema, reader: Schema, *, policy: Policy = Policy.LENIENT,
          identity_paths: Iterable[str] = IDENTITY_PATHS, max_steps: int = MAX_STEPS) -> list[Reason]:
    """[] when every instance valid under `writer` is valid under `reader`; otherwise why not. A walk that
    takes more than `max_steps` comparisons, or recurses deeper than Python can, proves nothing: one reason."""
    walk = _Walk(writer, reader, policy, frozenset(identity_paths), max_steps)
    try:
        return walk.sub(writer, reader, "")
    except _GaveUp as exc:
        return [Reason("too-complex", exc.path, f"gave up after {max_steps} comparisons: the schemas nest unions "
                                                "and intersections too deeply to prove containment")]
    except RecursionError:
        return [Reason("too-complex", "", "the schemas nest (or recurse through $ref) too deeply to compare")]


class _GaveUp(Exception):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def _esc(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def _fmt(value: Any) -> str:
    return "unbounded" if value is None else repr(value)


@dataclass
class _Walk:
    writer_root: Schema
    reader_root: Schema
    policy: Policy
    identity: frozenset[str]
    max_steps: int = MAX_STEPS
    _steps: int = 0
    _seen: set[tuple[int, int]] = field(default_factory=set)

    # -- entry: one position ----------------------------------------------------------------
    def sub(self, w: Schema, r: Schema, path: str) -> list[Reason]:
        if path in self.identity:
            return []
        self._steps += 1
        if self._steps > self.max_steps:
            raise _GaveUp(path)
        w, r = self._deref(w, self.writer_root), self._deref(r, self.reader_root)
        key = (id(w), id(r))
        if key in self._seen:  # recursive schemas: assume the cycle holds (coinduction)
            return []
        self._seen.add(key)
        try:
            return self._sub(w, r, path)
        finally:
            self._seen.discard(key)

    def _deref(self, schema: Schema, root: Schema) -> Schema:
        for _ in range(32):
            if not isinstance(schema, dict) or "$ref" not in schema:
                return schema
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema  # remote refs: left in place, reported as unprovable if they differ
            target: Any = root
            try:
                for part in [p for p in unquote(ref[1:]).split("/") if p]:
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target[int(part)] if isinstance(target, list) else target[part]
            except (KeyError, IndexError, ValueError, TypeError):
                return schema  # not a JSON pointer into this schema (an anchor, say): compared as written
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = target if not _constraining(rest) else {"allOf": [target, rest]}
        return schema

    def _sub(self, w: Schema, r: Schema, path: str) -> list[Reason]:
        if r is True or (isinstance(r, dict) and not _constraining(r)):
            return []
        if w is False:
            return []
        if r is False:
            return [Reason("reader-rejects-everything", path, "the reader accepts nothing (false schema)")]
        if w is True or (isinstance(w, dict) and not _constraining(w)):
            return [Reason("writer-unconstrained", path,
                           f"the writer allows any value here; the reader constrains it ({_summary(r)})")]
        if "$ref" in w or "$ref" in r:
            if w.get("$ref") == r.get("$ref"):
                return []
            return [Reason("remote-ref", path, "a $ref that is not a JSON pointer into the schema cannot be compared")]
        combined = self._combinators(w, r, path)
        if combined is not None:
            return combined
        finite = _finite_values(w)
        if finite is not None:
            return self._values(finite, r, path)
        reasons: list[Reason] = []
        types = self._types(w, r, path, reasons)
        if "enum" in r or "const" in r:
            allowed = r["enum"] if "enum" in r else [r["const"]]
            reasons.append(Reason("enum-added", path + ("/enum" if "enum" in r else "/const"),
                                  f"the reader accepts only {allowed!r}; the writer is not limited to those values"))
        for rule in KEYWORD_RULES:
            if _applies(rule, types):
                reasons += self._keyword(rule, w, r, path)
        if types & {"number", "integer"}:
            reasons += self._numeric_bounds(w, r, path, integer_only=types <= {"integer"})
        if "object" in types:
            reasons += self._object(w, r, path)
        if "array" in types:
            reasons += self._array(w, r, path)
        reasons += self._unknown(w, r, path)
        return reasons

    # -- anyOf / oneOf / allOf / not / if ------------------------------------------------------
    def _combinators(self, w: dict[str, Any], r: dict[str, Any], path: str) -> list[Reason] | None:
        for kw in ("anyOf", "oneOf"):
            if kw in w:  # a union on the writer's side: every branch must fit (locations stay the reader's)
                rest = {k: v for k, v in w.items() if k != kw}
                out: list[Reason] = []
                for i, branch in enumerate(w[kw]):
                    out += [Reason(x.rule, x.location, f"writer's {kw} branch {i}: {x.message}")
                            for x in self.sub(_merge(rest, branch), r, path)]
                return out
        for kw in ("anyOf", "oneOf"):
            if kw in r:  # a union on the reader's side: some branch must take everything (oneOf as anyOf)
                rest = {k: v for k, v in r.items() if k != kw}
                attempts = [self.sub(w, _merge(rest, branch), f"{path}/{kw}/{i}") for i, branch in enumerate(r[kw])]
                if any(not a for a in attempts):
                    return []
                closest = min(attempts, key=len)
                return [Reason(f"{kw}-no-branch-fits", f"{path}/{kw}",
                               f"no branch of the reader's {kw} accepts everything the writer allows"), *closest]
        if "allOf" in r:
            rest = {k: v for k, v in r.items() if k != "allOf"}
            out = self.sub(w, rest, path) if _constraining(rest) else []
            for i, part in enumerate(r["allOf"]):
                out += self.sub(w, part, f"{path}/allOf/{i}")
            return out
        if "allOf" in w:
            rest = {k: v for k, v in w.items() if k != "allOf"}
            parts = [rest, *w["allOf"]]
            if any(_constraining(p) and not self.sub(p, r, path) for p in parts if isinstance(p, dict)):
                return []
            merged: dict[str, Any] = {}
            for p in parts:
                merged = _merge(merged, p)
            return self.sub(merged, r, path)
        for kw in ("not", "if", "then", "else"):
            if kw in r and r.get(kw) != w.get(kw):
                return [Reason(f"{kw}-changed", f"{path}/{kw}", f"the reader's `{kw}` differs from the writer's; "
                                                                  "containment cannot be proven")]
        return None

    def _values(self, values: list[Any], r: Schema, path: str) -> list[Reason]:
        """A writer with enum/const allows finitely many values: try each one against the reader."""
        validator = jsonschema.Draft202012Validator(self.reader_root, format_checker=jsonschema.FormatChecker())
        sub_validator = validator.evolve(schema=r)
        try:
            return [Reason("enum-value-rejected", path, f"the writer allows {v!r}, which the reader rejects")
                    for v in values if not sub_validator.is_valid(v)]
        except Unresolvable as exc:
            return [Reason("remote-ref", path, f"the reader's values cannot be checked: {exc}")]

    # -- type ------------------------------------------------------------------------------
    def _types(self, w: dict[str, Any], r: dict[str, Any], path: str, reasons: list[Reason]) -> frozenset[str]:
        wt, rt = _type_set(w), _type_set(r)
        accepted = set()
        for t in sorted(wt):
            if t in rt or (t == "integer" and "number" in rt):
                accepted.add(t)
        rejected = wt - accepted
        if rejected == {"number"} and "integer" in rt and _integer_multiple(w):
            accepted.add("number")  # multipleOf an integer: every writer number is an integer
            rejected = frozenset()
        if rejected:
            what = "any type" if wt == ALL_TYPES else ", ".join(sorted(wt))
            reasons.append(Reason("type-narrowed", path + "/type",
                                  f"the writer allows {what}; the reader accepts only {', '.join(sorted(rt))} "
                                  f"({', '.join(sorted(rejected))} rejected)"))
        return frozenset(accepted)

    # -- data rules ----------------------------------------------------------------------------
    def _keyword(self, rule: KeywordRule, w: dict[str, Any], r: dict[str, Any], path: str) -> list[Reason]:
        kw = rule.keyword
        if kw not in r:
            return []
        rv, wv = r[kw], w.get(kw)
        where = f"{path}/{kw}"
        if rule.relation is Relation.UPPER and (wv is None or rv < wv):
            return [Reason(rule.rule, where, f"{kw} tightened from {_fmt(wv)} to {rv!r}")]
        if rule.relation is Relation.LOWER and rv > (wv or 0):
            return [Reason(rule.rule, where, f"{kw} tightened from {_fmt(wv or 0)} to {rv!r}")]
        if rule.relation is Relation.FLAG and rv is True and wv is not True:
            return [Reason(rule.rule, where, f"the reader requires {kw}; the writer does not")]
        if rule.relation is Relation.DIVISOR:
            if wv is not None and (Fraction(str(wv)) / Fraction(str(rv))).denominator == 1:
                return []
            if wv is None and rv == 1 and _type_set(w) <= {"integer"}:
                return []
            return [Reason(rule.rule, where, f"multipleOf {rv!r} rejects values the writer's "
                                             f"{'multipleOf ' + repr(wv) if wv is not None else 'schema'} allows")]
        if rule.relation is Relation.SAME_OR_DROPPED and rv != wv:
            change = f"added ({rv!r})" if wv is None else f"changed from {wv!r} to {rv!r}"
            return [Reason(rule.rule, where, f"{kw} {change}: the reader may reject what the writer allows")]
        return []

    def _numeric_bounds(self, w: dict[str, Any], r: dict[str, Any], path: str, integer_only: bool) -> list[Reason]:
        out = []
        for side, inclusive_kw, exclusive_kw in (("lower", "minimum", "exclusiveMinimum"),
                                                 ("upper", "maximum", "exclusiveMaximum")):
            wb = _bound(w, inclusive_kw, exclusive_kw, side, integer_only)
            rb = _bound(r, inclusive_kw, exclusive_kw, side, integer_only)
            if rb is None:
                continue
            tighter = wb is None or (rb[0] > wb[0] if side == "lower" else rb[0] < wb[0]) or (
                rb[0] == wb[0] and rb[1] and not wb[1])
            if tighter:
                kw = exclusive_kw if rb[1] else inclusive_kw
                out.append(Reason(f"{side}-bound-tightened", f"{path}/{kw}",
                                  f"{side} bound tightened from {_fmt(wb and _show(wb))} to {_show(rb)}"))
        return out

    # -- objects ---------------------------------------------------------------------------------
    def _object(self, w: dict[str, Any], r: dict[str, Any], path: str) -> list[Reason]:
        out: list[Reason] = []
        wp: dict[str, Any] = w.get("properties", {})
        rp: dict[str, Any] = r.get("properties", {})
        w_extra = w.get("additionalProperties", True)
        if self.policy is Policy.LENIENT and w_extra is True:
            w_extra = False  # writers write what they declare
        r_extra = r.get("additionalProperties", True)
        for name, w_schema in wp.items():
            where = f"{path}/properties/{_esc(name)}"
            if name in rp:
                out += self.sub(w_schema, rp[name], where)
            elif r_extra is False:
                out.append(Reason("property-forbidden", where,
                                  f"the writer declares '{name}'; the reader's additionalProperties is false"))
            elif r_extra is not True:
                out += self.sub(w_schema, r_extra, f"{path}/additionalProperties")
        for name, r_schema in rp.items():
            if name in wp or w_extra is False:
                continue
            found = self.sub(w_extra, r_schema, f"{path}/properties/{_esc(name)}")
            if found and w_extra is True:
                found = [Reason("property-undeclared-by-open-writer", f"{path}/properties/{_esc(name)}",
                                f"the reader constrains '{name}', which the writer does not declare; the writer's "
                                f"content model is open, so its data may carry '{name}' with any value "
                                "(STRICT policy)")]
            out += found
        if w_extra is not False:
            if r_extra is False:
                out.append(Reason("additional-properties-closed", f"{path}/additionalProperties",
                                  "the reader forbids undeclared properties; the writer allows them"))
            elif r_extra is not True:
                out += self.sub(w_extra, r_extra, f"{path}/additionalProperties")
        for name in r.get("required", []):
            if name not in w.get("required", []):
                out.append(Reason("required-added", f"{path}/required",
                                  f"'{name}' is required by the reader but not by the writer: "
                                  "its data may lack it"))
        return out

    # -- arrays ---------------------------------------------------------------------------------
    def _array(self, w: dict[str, Any], r: dict[str, Any], path: str) -> list[Reason]:
        out: list[Reason] = []
        w_items, r_items = w.get("items", True), r.get("items", True)
        w_prefix, r_prefix = w.get("prefixItems", []), r.get("prefixItems", [])
        for i, r_schema in enumerate(r_prefix):
            w_schema = w_prefix[i] if i < len(w_prefix) else w_items
            out += self.sub(w_schema, r_schema, f"{path}/prefixItems/{i}")
        if r_items is not True:
            for i in range(len(r_prefix), len(w_prefix)):
                out += self.sub(w_prefix[i], r_items, f"{path}/items")
            out += self.sub(w_items, r_items, f"{path}/items")
        return out

    def _unknown(self, w: dict[str, Any], r: dict[str, Any], path: str) -> list[Reason]:
        return [Reason("unsupported-keyword", f"{path}/{_esc(k)}",
                       f"keyword '{k}' is not understood by the checker and differs from the writer's")
                for k in r if k not in KNOWN and r[k] != w.get(k)]


# -- helpers -----------------------------------------------------------------------------------
def _constraining(schema: dict[str, Any]) -> bool:
    return any(k not in ANNOTATIONS for k in schema)


def _merge(base: dict[str, Any], extra: Schema) -> Schema:
    if not isinstance(extra, dict):
        return extra if base == {} else ({"allOf": [base, extra]} if extra is False else base)
    return {**base, **extra}


def _type_set(schema: dict[str, Any]) -> frozenset[str]:
    t = schema.get("type")
    if t is None:
        return ALL_TYPES
    return frozenset([t] if isinstance(t, str) else t)


def _finite_values(schema: dict[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _integer_multiple(schema: dict[str, Any]) -> bool:
    m = schema.get("multipleOf")
    return m is not None and Fraction(str(m)).denominator == 1


def _applies(rule: KeywordRule, types: frozenset[str]) -> bool:
    if rule.applies_to == "number":
        return bool(types & {"number", "integer"})
    return rule.applies_to in types


def _bound(schema: dict[str, Any], inclusive_kw: str, exclusive_kw: str, side: str,
           integer_only: bool) -> tuple[float, bool] | None:
    """The tighter of the inclusive and exclusive bound, as (value, exclusive)."""
    candidates: list[tuple[float, bool]] = []
    if isinstance(schema.get(inclusive_kw), int | float):
        candidates.append((schema[inclusive_kw], False))
    if isinstance(schema.get(exclusive_kw), int | float):
        candidates.append((schema[exclusive_kw], True))
    if not candidates:
        return None
    if integer_only:  # over integers, x > 1.5 is x >= 2 and x > 2 is x >= 3
        candidates = [(_int_bound(v, exc, side), False) for v, exc in candidates]
    if side == "lower":
        return max(candidates, key=lambda b: (b[0], b[1]))
    return min(candidates, key=lambda b: (b[0], not b[1]))


def _int_bound(value: float, exclusive: bool, side: str) -> int:
    if side == "lower":
        return math.floor(value) + 1 if exclusive else math.ceil(value)
    return math.ceil(value) - 1 if exclusive else math.floor(value)


def _show(bound: tuple[float, bool]) -> str:
    return f"{bound[0]!r}{' (exclusive)' if bound[1] else ''}"


def _summary(schema: Schema) -> str:
    if not isinstance(schema, dict):
        return repr(schema)
    keys = [k for k in schema if k not in ANNOTATIONS]
    return ", ".join(keys[:4]) + ("…" if len(keys) > 4 else "")
