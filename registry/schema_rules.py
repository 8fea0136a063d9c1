"""What the registry requires of a schema before it takes it, and the identity rules between versions.

A schema is taken when it is a JSON Schema 2020-12 that every client can compile: the meta-schema holds and
jsonschema-rs (what `eventbus.schemas.SchemaClient` and `/validate` compile with) builds a validator from it
without fetching anything. The event identity it pins (`meta.event_name`, `meta.event_version`, seed 004) must
be storable, name the subject's event, and a changed schema needs an event version not yet taken.
"""

from __future__ import annotations

from typing import Any, NoReturn

import jsonschema
import jsonschema_rs

from eventbus.schemas.validation import event_name_of, event_version_of
from registry import errors
from registry.compat import Reason
from registry.compat.modes import Finding
from registry.errors import RegistryError
from registry.store import SubjectVersion, canonical

#: event versions are stored as a 4-byte integer (`subject_versions.event_version`); they start at 0
MAX_EVENT_VERSION = 2**31 - 1
MESSAGE_LIMIT = 500  # characters of a validator's message quoted back


def require_valid(schema: Any) -> None:
    """Raise 42201 saying where, unless `schema` is one the registry takes (see the module's doc)."""
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.path)
        _invalid(f"Invalid schema at {where}: {exc.message}")
    except RecursionError:
        _invalid("Invalid schema: nested too deeply to check")
    try:
        jsonschema_rs.validator_for(schema, validate_formats=True, retriever=_no_remote)
    except ValueError as exc:  # jsonschema_rs.ValidationError is one
        _invalid(f"Invalid schema: the validator cannot compile it: {str(exc).splitlines()[0]}")
    pinned_identity(schema)


def _no_remote(uri: str) -> NoReturn:
    raise ValueError(f"{uri} is not a local reference; inline it under $defs and point at it with a local $ref")


def _invalid(message: str) -> NoReturn:
    if len(message) > MESSAGE_LIMIT:
        message = message[:MESSAGE_LIMIT] + "…"
    raise RegistryError(errors.INVALID_SCHEMA, message)


def pinned_identity(schema: Any) -> tuple[str | None, int | None]:
    """(event name, event version) the schema pins, None where it pins none; 42201 when the pinned version
    cannot be an event version (not an integer, or beyond what the store holds)."""
    if not isinstance(schema, dict):
        return None, None
    name, version = event_name_of(schema), event_version_of(schema)
    if isinstance(version, bool):
        _invalid(f"Invalid schema at /properties/meta/properties/event_version: pins {str(version).lower()}; "
                 "an event version is an integer")
    if version is not None and not 0 <= version <= MAX_EVENT_VERSION:
        _invalid(f"Invalid schema at /properties/meta/properties/event_version: pins {version}; event versions "
                 f"are between 0 and {MAX_EVENT_VERSION}")
    return name, version


def identity_findings(subject: str, schema: Any, live: list[SubjectVersion]) -> list[Finding]:
    """A schema pinning an event identity must name this subject's event, and a version that no live version
    with *other* content holds (the same content under the same version is the same schema: no finding)."""
    findings = []
    name, version = pinned_identity(schema)
    if name is not None and name != subject:
        findings.append(Finding(0, "identity", Reason(
            "event-name-mismatch", "/properties/meta/properties/event_name",
            f"the schema pins event_name {name!r} but the subject is {subject!r}")))
    if version is not None:
        text = canonical(schema)
        for taken in live:
            if taken.event_version == version and taken.schema != text:
                findings.append(Finding(taken.version, "identity", Reason(
                    "event-version-taken", "/properties/meta/properties/event_version",
                    f"event_version {version} is already registered as version {taken.version} with other "
                    "content; a changed schema needs a new event_version")))
                break
    return findings
