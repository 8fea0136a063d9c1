"""The validators `tests.bench.registry` compares: our envelopes as cases, each library as a candidate, and
the checks that a fast validator is also a right one (every example in `schemas/`, draft 2020-12 probes)."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.bench.registry_common import SCHEMAS


@dataclass
class Case:
    event: str
    version: int
    schema: dict[str, Any]
    valid: list[dict[str, Any]]
    invalid: list[dict[str, Any]]

    @property
    def label(self) -> str:
        return f"{self.event} v{self.version}"

    @property
    def envelope(self) -> dict[str, Any]:
        return dict(self.valid[0]["instance"])


def load_case(event: str, version: int) -> Case:
    schema = json.loads((SCHEMAS / event / f"v{version}.json").read_text())
    examples = json.loads((SCHEMAS / event / f"v{version}.examples.json").read_text())
    return Case(event, version, schema, examples.get("valid", []), examples.get("invalid", []))


def all_cases() -> list[Case]:
    cases = []
    for path in sorted(SCHEMAS.glob("*/v*.json")):
        match = re.fullmatch(r"v(\d+)\.json", path.name)
        if match and path.with_name(f"v{match.group(1)}.examples.json").is_file():
            cases.append(load_case(path.parent.name, int(match.group(1))))
    return cases


@dataclass
class Candidate:
    """One way to validate: `compile(schema)` -> a callable that returns normally on valid instances."""

    name: str
    compile: Callable[[dict[str, Any]], Callable[[Any], Any]]
    #: callable(compiled, instance) -> bool, for conformance checks
    is_valid: Callable[[Any, Any], bool]
    #: callable(compiled, instance) -> list of errors (full report), or None when the library has none
    errors: Callable[[Any, Any], list[Any]] | None
    note: str = ""
    is_async: bool = False
    #: per case label: validations/s, or None with a reason in `failures`
    rates: dict[str, float | None] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    conformance: tuple[int, int] = (0, 0)
    mismatches: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)


def candidates() -> list[Candidate]:
    import fastjsonschema
    import jsonschema
    import jsonschema_rs

    from eventbus.schemas.client import SchemaClient
    from eventbus.schemas.validation import CompiledSchema

    def js_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        return validator.is_valid

    def js_errors(compiled: Any, instance: Any) -> list[Any]:
        return list(compiled.__self__.iter_errors(instance))

    def fjs_valid(compiled: Any, instance: Any) -> bool:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def fjs_first_error(compiled: Any, instance: Any) -> list[Any]:
        try:
            compiled(instance)
        except fastjsonschema.JsonSchemaValueException as exc:
            return [exc]
        return []

    def rs_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        return jsonschema_rs.validator_for(schema, validate_formats=True).is_valid  # type: ignore[no-any-return]

    def rs_errors(compiled: Any, instance: Any) -> list[Any]:
        return list(compiled.__self__.iter_errors(instance))

    def ours_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        return CompiledSchema("bench", 0, schema).is_valid

    def ours_errors(compiled: Any, instance: Any) -> list[Any]:
        return compiled.__self__.issues(instance)  # type: ignore[no-any-return]

    def client_compile(schema: dict[str, Any]) -> Callable[[Any], Any]:
        """`await SchemaClient.validate(envelope)`: what the outbox writer calls per event (disk fallback)."""
        client = SchemaClient(None, fallback_dir=SCHEMAS)
        return client.validate

    def client_valid(compiled: Any, instance: Any) -> bool:
        _, issues = asyncio.run(compiled(instance))
        return not issues

    def client_errors(compiled: Any, instance: Any) -> list[Any]:
        _, issues = asyncio.run(compiled(instance))
        return issues  # type: ignore[no-any-return]

    js_formats = sorted(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
    return [
        Candidate("jsonschema Draft202012Validator", js_compile, lambda c, i: bool(c(i)), js_errors,
                  note=f"format checker knows: {', '.join(js_formats)}"),
        Candidate("fastjsonschema", fastjsonschema.compile, fjs_valid, fjs_first_error,
                  note="drafts 04/06/07/2019-09 only; a 2020-12 $schema falls back to its 2019-09 generator; "
                       "stops at the first error"),
        Candidate("jsonschema-rs validator_for", rs_compile, lambda c, i: bool(c(i)), rs_errors),
        Candidate("registry CompiledSchema.is_valid", ours_compile, lambda c, i: bool(c(i)), ours_errors,
                  note="the registry service's /validate"),
        Candidate("registry SchemaClient.validate", client_compile, client_valid, client_errors,
                  note="producer hot path (outbox writer): async, schema picked by the envelope's own "
                       "event_name/event_version, cache hit + CompiledSchema.is_valid", is_async=True),
    ]



#: draft 2020-12 keywords (and one 2019-09 one) with an instance each must reject
PROBES: list[tuple[str, dict[str, Any], Any]] = [
    ("prefixItems", {"type": "array", "prefixItems": [{"type": "integer"}]}, ["x"]),
    ("$defs + $ref", {"$defs": {"n": {"type": "integer"}}, "properties": {"a": {"$ref": "#/$defs/n"}}}, {"a": "x"}),
    ("dependentRequired", {"dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ("unevaluatedProperties", {"properties": {"a": {}}, "unevaluatedProperties": False}, {"a": 1, "b": 2}),
    ("format uuid", {"type": "string", "format": "uuid"}, "not-a-uuid"),
    ("format date-time", {"type": "string", "format": "date-time"}, "yesterday"),
]


def probe(candidate: Candidate) -> list[str]:
    missed = []
    for keyword, schema, bad in PROBES:
        try:
            compiled = candidate.compile({"$schema": "https://json-schema.org/draft/2020-12/schema", **schema})
            if candidate.is_async:
                continue  # same validator as CompiledSchema; needs files on disk
            if candidate.is_valid(compiled, bad):
                missed.append(keyword)
        except Exception as exc:
            missed.append(f"{keyword} ({type(exc).__name__})")
    return missed


def conformance(candidate: Candidate, cases: list[Case]) -> None:
    agreed = total = 0
    for case in cases:
        try:
            compiled = candidate.compile(case.schema)
        except Exception as exc:
            candidate.mismatches.append(f"{case.label}: does not compile ({type(exc).__name__}: {exc})")
            total += len(case.valid) + len(case.invalid)
            continue
        for expected, examples in ((True, case.valid), (False, case.invalid)):
            for example in examples:
                total += 1
                try:
                    got = candidate.is_valid(compiled, example["instance"])
                except Exception as exc:
                    candidate.mismatches.append(f"{case.label}: {example.get('why')}: raised {type(exc).__name__}")
                    continue
                if got == expected:
                    agreed += 1
                else:
                    verdict = "accepted" if got else "rejected"
                    candidate.mismatches.append(f"{case.label}: {verdict} \"{example.get('why')}\"")
    candidate.conformance = (agreed, total)


def formats_used(cases: list[Case]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for case in cases:
        walk(case.schema)
    return found


def multi_error_envelope(case: Case) -> dict[str, Any]:
    """A ManagerCreated v1 envelope with five independent errors."""
    envelope = copy.deepcopy(case.envelope)
    envelope["meta"]["event_id"] = "not-a-uuid"
    envelope["meta"]["produced_at"] = "yesterday"
    envelope["payload"]["first_name"] = ""
    envelope["payload"]["username"] = "Not Valid!"
    envelope["payload"].pop("account_id", None)
    return envelope

