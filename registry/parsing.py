"""Request parsing at the edge: path parameters, request bodies and the schema text they carry, turned into
domain values or refused with the registry's error codes, naming the parameter or field and the problem.

Limits, so that nothing past the edge meets what it cannot hold or walk:
- subjects (and event names) are at most `MAX_NAME` characters without U+0000 or lone surrogates (PostgreSQL
  text holds neither; long names overflow its index entries);
- version numbers and schema ids are 1..2^31-1 and event versions 0..2^31-1 (Confluent's range; the store's
  4-byte columns), written in decimal digits;
- JSON request bodies and schemas nest at most `MAX_DEPTH` levels (the validators and the compatibility
  engine recurse), numbers fit a double, and strings are Unicode text.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson

from eventbus.envelope import EnvelopeError, identity
from registry import errors
from registry.compat import Mode, Policy
from registry.errors import RegistryError

MAX_INT = 2**31 - 1
MAX_NAME = 255
MAX_DEPTH = 64
_DIGITS = len(str(MAX_INT))
_Choice = TypeVar("_Choice", Mode, Policy)


def _shown(raw: str, limit: int = 40) -> str:
    """A parameter's value, quoted back short and printable."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


def name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if "\x00" in name:
        return "contains U+0000 (NUL)"
    if not name.isascii():
        try:
            name.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate (not Unicode text)"
    return None


def subject(raw: str, param: str = "subject") -> str:
    problem = name_problem(raw)
    if problem is not None:
        raise RegistryError(errors.INVALID_SUBJECT, f"The {param} {_shown(raw)} {problem}")
    return raw


def _number(raw: str, lowest: int) -> int | None:
    if len(raw) <= _DIGITS and raw.isascii() and raw.isdigit():
        value = int(raw)
        if lowest <= value <= MAX_INT:
            return value
    return None


def version(raw: str) -> int | None:
    """A subject version: "latest" / -1 -> None, else 1..2^31-1 (Confluent's 42202 when not)."""
    if raw in ("latest", "-1"):
        return None
    value = _number(raw, 1)
    if value is None:
        raise RegistryError(errors.INVALID_VERSION,
                            f"The specified version {_shown(raw)} is not a valid version id. "
                            f"Allowed values are between [1, 2^31-1] and the string \"latest\"")
    return value


def event_version(raw: str) -> int:
    value = _number(raw, 0)
    if value is None:
        raise RegistryError(errors.INVALID_VERSION, f"The event_version {_shown(raw)} is not a valid event version: "
                                                    f"an integer between 0 and {MAX_INT}")
    return value


def schema_id(raw: str) -> int:
    value = _number(raw, 1)
    if value is None:
        raise RegistryError(errors.INVALID_REQUEST, f"The schema id {_shown(raw)} is not a valid schema id: "
                                                    f"an integer between 1 and {MAX_INT}")
    return value


# -- JSON ---------------------------------------------------------------------------------------------------
def too_deep(value: Any, raw: bytes | str, limit: int = MAX_DEPTH) -> str | None:
    """The JSON pointer of the first place where `value` (parsed from `raw`) nests deeper than `limit`."""
    brackets = raw.count("[") + raw.count("{") if isinstance(raw, str) else raw.count(b"[") + raw.count(b"{")
    if brackets <= limit:
        return None  # cannot nest deeper than it has brackets: the common case costs two scans in C
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        node, depth, where = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            if isinstance(child, dict | list):
                pointer = f"{where}/{str(key).replace('~', '~0').replace('/', '~1')}"
                if depth + 1 > limit:
                    return pointer
                stack.append((child, depth + 1, pointer))
    return None


def json_value(raw: bytes | str, what: str, code: int) -> Any:
    """`raw` parsed (orjson: strict JSON, numbers within a double, Unicode strings), nesting at most
    `MAX_DEPTH` levels."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = f"nests deeper than {MAX_DEPTH} levels" if "depth" in str(exc) else f"not JSON ({exc})"
        raise RegistryError(code, f"{what} is {reason}") from exc
    if isinstance(value, dict | list):
        where = too_deep(value, raw)
        if where is not None:
            raise RegistryError(code, f"{what} nests deeper than {MAX_DEPTH} levels (at {where})")
    return value


def json_object(raw: bytes, code: int) -> dict[str, Any]:
    body = json_value(raw or b"{}", "The request body", code)
    if not isinstance(body, dict):
        raise RegistryError(code, "The request body must be a JSON object")
    return body


def schema_request(raw: bytes) -> Any:
    """The schema of a Confluent request body (`{"schema": "<json text>", "schemaType": "JSON"}`)."""
    body = json_object(raw, errors.INVALID_SCHEMA)
    schema_type = body.get("schemaType", "JSON")
    if schema_type != "JSON":
        shown = _shown(schema_type) if isinstance(schema_type, str) else f"of JSON type {_json_type(schema_type)}"
        raise RegistryError(errors.INVALID_SCHEMA, f"Invalid schemaType {shown}: this registry holds JSON schemas "
                                                   "only (schemaType \"JSON\")")
    references = body.get("references")
    if references is not None and not isinstance(references, list):
        raise RegistryError(errors.INVALID_SCHEMA, f"Invalid references: JSON {_json_type(references)}, expected an "
                                                   "array")
    if references:
        raise RegistryError(errors.INVALID_SCHEMA, "Schema references are not supported; inline them with a local "
                                                   "$ref under $defs")
    text = body.get("schema")
    if not isinstance(text, str):
        raise RegistryError(errors.INVALID_SCHEMA, "Invalid schema: the body needs \"schema\", the schema as a JSON "
                                                   "string")
    return schema_text(text)


def schema_text(text: str) -> Any:
    json_value(text, "Invalid schema: the schema", errors.INVALID_SCHEMA)  # refuses what JSON and the limits do
    try:
        return json.loads(text)  # again, for integers beyond 64 bits as written (orjson makes them doubles)
    except ValueError as exc:
        raise RegistryError(errors.INVALID_SCHEMA, f"Invalid schema: not JSON ({exc})") from exc


def config_request(raw: bytes) -> tuple[Mode | None, Policy | None]:
    """`PUT /config[/subject]`: {"compatibility": mode, "policy": policy}, either optional, any case."""
    body = json_object(raw, errors.INVALID_REQUEST)
    mode = _choice(Mode, body, "compatibility", "compatibility level")
    policy = _choice(Policy, body, "policy", "policy")
    return mode, policy


def _choice(kind: type[_Choice], body: dict[str, Any], field: str, what: str) -> _Choice | None:
    if field not in body:
        return None
    value = body[field]
    choices = ", ".join(m.value for m in kind)
    if not isinstance(value, str):
        raise RegistryError(errors.INVALID_COMPATIBILITY_LEVEL, f"Invalid {what}: \"{field}\" is JSON "
                                                                f"{_json_type(value)}; one of {choices}")
    try:
        return kind(value.upper())
    except ValueError as exc:
        raise RegistryError(errors.INVALID_COMPATIBILITY_LEVEL,
                            f"Invalid {what} {_shown(value)}; one of {choices}") from exc


def envelope(raw: bytes) -> tuple[dict[str, Any], str, int]:
    """`POST /validate`'s body: the envelope and its identity (42210 saying why when it is not one)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = f"it nests deeper than {MAX_DEPTH} levels" if "depth" in str(exc) else f"not JSON ({exc})"
        raise RegistryError(errors.INVALID_ENVELOPE, f"Not an event envelope: {reason}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("meta"), dict):
        raise RegistryError(errors.INVALID_ENVELOPE, "Not an event envelope: expected an object with a `meta` object")
    where = too_deep(doc, raw)
    if where is not None:
        raise RegistryError(errors.INVALID_ENVELOPE, f"Not an event envelope: it nests deeper than {MAX_DEPTH} "
                                                     f"levels (at {where})")
    try:
        name, number = identity(doc)
    except EnvelopeError as exc:
        raise RegistryError(errors.INVALID_ENVELOPE, f"Not an event envelope: {exc}") from exc
    problem = name_problem(name)
    if problem is not None:
        raise RegistryError(errors.INVALID_ENVELOPE, f"Not an event envelope: meta.event_name {_shown(name)} {problem}")
    if not 0 <= number <= MAX_INT:
        raise RegistryError(errors.INVALID_ENVELOPE, f"Not an event envelope: meta.event_version {number} is out of "
                                                     f"range: event versions are between 0 and {MAX_INT}")
    return doc, name, number


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")
