"""Compiled validators and error reports with JSON pointers.

The hot path is `CompiledSchema.is_valid` (jsonschema-rs, chosen by `make bench-registry`); the same
compiled validator yields the full error list for 422 bodies and DLQ reasons.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    pointer: str  # JSON pointer into the instance, "" for the root
    message: str
    keyword: str

    def as_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message, "keyword": self.keyword}


def json_pointer(path: Iterable[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _keyword(error: Any) -> str:
    kind = type(getattr(error, "kind", None)).__name__
    return kind.lower() if kind not in ("NoneType", "") else "unknown"


@dataclass(frozen=True)
class CompiledSchema:
    event_name: str
    event_version: int
    schema: dict[str, Any]
    schema_id: int | None = None

    def __post_init__(self) -> None:
        validator = jsonschema_rs.validator_for(self.schema, validate_formats=True)
        object.__setattr__(self, "_validator", validator)

    def is_valid(self, instance: Any) -> bool:
        return bool(self._validator.is_valid(instance))  # type: ignore[attr-defined]

    def issues(self, instance: Any) -> list[SchemaIssue]:
        errors: Sequence[Any] = list(self._validator.iter_errors(instance))  # type: ignore[attr-defined]
        return [SchemaIssue(json_pointer(e.instance_path), e.message, _keyword(e)) for e in errors]


def event_version_of(schema: dict[str, Any]) -> int | None:
    """The event version a schema pins in `meta.event_version` (seed 004 writes `"enum": [N]`)."""
    pin = _meta_property(schema, "event_version")
    values = pin.get("enum") if isinstance(pin, dict) else None
    if isinstance(pin, dict) and "const" in pin:
        values = [pin["const"]]
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], int):
        return values[0]
    return None


def event_name_of(schema: dict[str, Any]) -> str | None:
    pin = _meta_property(schema, "event_name")
    values = pin.get("enum") if isinstance(pin, dict) else None
    if isinstance(pin, dict) and "const" in pin:
        values = [pin["const"]]
    if isinstance(values, list) and len(values) == 1 and isinstance(values[0], str):
        return values[0]
    return None


def _meta_property(schema: dict[str, Any], name: str) -> Any:
    meta = schema.get("properties", {}).get("meta", {})
    return meta.get("properties", {}).get(name) if isinstance(meta, dict) else None
