"""Registry operations with Confluent's semantics and error codes; the HTTP routes stay thin."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import jsonschema

from eventbus.envelope import EnvelopeError, identity
from eventbus.schemas.validation import CompiledSchema, event_name_of, event_version_of
from registry import errors
from registry.compat import Mode, Policy, Verdict, verdict
from registry.compat.engine import Reason
from registry.compat.modes import Finding
from registry.errors import RegistryError
from registry.store import RegistryStore, SubjectVersion

log = logging.getLogger(__name__)

#: How long an (event, event_version) -> schema answer is reused without asking the database. Writes through
#: this process drop the answers at once; the TTL bounds what another registry process's writes can leave stale.
EVENT_SCHEMA_TTL = 1.0


@dataclass(frozen=True)
class Registered:
    schema_id: int
    version: int
    created: bool


def parse_schema(body: dict[str, Any]) -> Any:
    """The schema of a Confluent request body (`{"schema": "<json text>", "schemaType": "JSON"}`)."""
    schema_type = body.get("schemaType", "JSON")
    if schema_type != "JSON":
        raise RegistryError(422, errors.INVALID_SCHEMA, f"Invalid schema type {schema_type!r}: this registry "
                                                        "holds JSON schemas only (schemaType \"JSON\")")
    if body.get("references"):
        raise RegistryError(422, errors.INVALID_SCHEMA, "Schema references are not supported; inline them "
                                                        "with a local $ref under $defs")
    text = body.get("schema")
    if not isinstance(text, str):
        raise RegistryError(422, errors.INVALID_SCHEMA, "Invalid schema: the body needs \"schema\", the schema "
                                                        "as a JSON string")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise RegistryError(422, errors.INVALID_SCHEMA, f"Invalid schema: not JSON ({exc})") from exc
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/" + "/".join(str(p) for p in exc.path)
        raise RegistryError(422, errors.INVALID_SCHEMA, f"Invalid schema at {where}: {exc.message}") from exc
    return schema


def parse_mode(value: Any) -> Mode:
    try:
        return Mode(str(value).upper())
    except ValueError as exc:
        levels = ", ".join(m.value for m in Mode)
        raise RegistryError(422, errors.INVALID_COMPATIBILITY_LEVEL,
                            f"Invalid compatibility level {value!r}; one of {levels}") from exc


def parse_policy(value: Any) -> Policy:
    try:
        return Policy(str(value).upper())
    except ValueError as exc:
        raise RegistryError(422, errors.INVALID_COMPATIBILITY_LEVEL,
                            f"Invalid policy {value!r}; one of LENIENT, STRICT") from exc


class RegistryService:
    """Per process: the store plus caches of immutable things (schema bodies by id, validators) and, for
    `EVENT_SCHEMA_TTL`, of which schema each event version resolves to (what `/validate` asks per request)."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._bodies: dict[int, bytes] = {}
        self._compiled: dict[int, CompiledSchema] = {}
        self._events: dict[tuple[str, int], tuple[float, SubjectVersion]] = {}
        self._generation = 0  # bumped by every write: an answer read before a write is not cached after it

    # -- reads --------------------------------------------------------------------------------
    async def schema_body(self, schema_id: int) -> bytes:
        body = self._bodies.get(schema_id)
        if body is None:
            generation = self._generation
            text = await self.store.schema(schema_id)
            if text is None:
                raise RegistryError(404, errors.SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
            body = json.dumps({"schema": text, "schemaType": "JSON", "references": []},
                              separators=(",", ":")).encode()
            if generation == self._generation:  # not read across a permanent delete
                self._bodies[schema_id] = body
        return body

    def cached_body(self, schema_id: int) -> bytes | None:
        """`schema_body` when it is cached (the HTTP fast path), else None."""
        return self._bodies.get(schema_id)

    async def event_schema(self, name: str, version: int) -> SubjectVersion:
        """The live schema that event `name` version `version` resolves to (404xx when none)."""
        key = (name, version)
        hit = self._events.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        generation = self._generation
        found = await self.store.by_event_version(name, version)
        if found is None:
            self._events.pop(key, None)
            if not await self.store.subject_exists(name):
                raise RegistryError(404, errors.UNKNOWN_EVENT, f"Unknown event '{name}'.")
            raise RegistryError(404, errors.UNKNOWN_EVENT_VERSION, f"Event '{name}' has no version {version}.")
        if generation == self._generation:
            self._events[key] = (now + EVENT_SCHEMA_TTL, found)
        return found

    async def validate_envelope(self, raw: bytes) -> tuple[int, dict[str, Any]]:
        """`POST /validate`: (200, {"valid": true, ...}) or (422, every error with its JSON pointer)."""
        try:
            envelope = json.loads(raw)
            if not isinstance(envelope, dict) or not isinstance(envelope.get("meta"), dict):
                raise EnvelopeError("expected an object with a `meta` object")
            name, version = identity(envelope)
        except (ValueError, EnvelopeError) as exc:
            raise RegistryError(422, errors.INVALID_ENVELOPE, f"Not an event envelope: {exc}") from exc
        found = await self.event_schema(name, version)
        compiled = self.compiled(found)
        if compiled.is_valid(envelope):
            return 200, {"valid": True, "schema_id": found.schema_id, "subject": name, "version": found.version}
        issues = [i.as_dict() for i in compiled.issues(envelope)]
        return 422, {"valid": False, "error_code": errors.ENVELOPE_DOES_NOT_MATCH, "schema_id": found.schema_id,
                     "message": f"{len(issues)} error(s) against {name} v{version}", "errors": issues}

    def compiled(self, found: SubjectVersion) -> CompiledSchema:
        hit = self._compiled.get(found.schema_id)
        if hit is None:
            hit = CompiledSchema(found.subject, found.event_version or 0, json.loads(found.schema), found.schema_id)
            self._compiled[found.schema_id] = hit
        return hit

    async def require_subject(self, subject: str, *, include_deleted: bool = False) -> None:
        if not await self.store.subject_exists(subject, include_deleted=include_deleted):
            raise RegistryError(404, errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")

    async def version(self, subject: str, version: int | None, *, include_deleted: bool = False) -> SubjectVersion:
        found = await self.store.version(subject, version, include_deleted=include_deleted)
        if found is None:
            await self.require_subject(subject, include_deleted=True)
            raise RegistryError(404, errors.VERSION_NOT_FOUND,
                                f"Version {'latest' if version is None else version} not found.")
        return found

    async def config(self, subject: str | None) -> tuple[Mode, Policy]:
        mode, policy, _ = await self.store.config(subject)
        return Mode(mode), Policy(policy)

    # -- compatibility ------------------------------------------------------------------------
    async def check(self, subject: str, schema: Any, version: int | None = None) -> Verdict:
        """`version=None`: the subject's mode over its history; a number: the mode's directions vs that one."""
        mode, policy = await self.config(subject)
        live = await self.store.versions(subject)
        if version is None:
            history = [(v.version, json.loads(v.schema)) for v in live]
        else:
            target = await self.version(subject, version)
            history = [(target.version, json.loads(target.schema))]
            mode = Mode(mode.value.removesuffix("_TRANSITIVE"))
        result = verdict(schema, history, mode, policy)
        identity = self._identity_findings(subject, schema, live)
        return Verdict(result.mode, result.policy, result.checked_versions, identity + list(result.findings))

    @staticmethod
    def _identity_findings(subject: str, schema: Any, live: list[SubjectVersion]) -> list[Finding]:
        """A schema pinning an event identity must name this subject's event and a version not yet taken."""
        findings = []
        name, version = event_name_of(schema), event_version_of(schema)
        if name is not None and name != subject:
            findings.append(Finding(0, "identity", Reason(
                "event-name-mismatch", "/properties/meta/properties/event_name",
                f"the schema pins event_name {name!r} but the subject is {subject!r}")))
        taken = {v.event_version: v.version for v in live if v.event_version is not None}
        if version is not None and version in taken:
            findings.append(Finding(taken[version], "identity", Reason(
                "event-version-taken", "/properties/meta/properties/event_version",
                f"event_version {version} is already registered as version {taken[version]} with other content; "
                "a changed schema needs a new event_version")))
        return findings

    # -- writes -------------------------------------------------------------------------------
    async def register(self, subject: str, schema: Any) -> Registered:
        existing = await self.store.find(subject, schema)
        if existing is not None:
            return Registered(existing.schema_id, existing.version, created=False)
        result = await self.check(subject, schema)
        if not result.compatible:
            raise RegistryError(
                409, errors.INCOMPATIBLE,
                f"Schema being registered is incompatible with an earlier schema for subject \"{subject}\" "
                f"({result.mode.value}, {result.policy.value}), details: {[f.message() for f in result.findings]}",
                reasons=[f.as_dict() for f in result.findings])
        added = await self.store.add_version(subject, schema)
        self._changed()
        log.info("registered %s version %d (id %d)", subject, added.version, added.schema_id)
        return Registered(added.schema_id, added.version, created=True)

    async def lookup(self, subject: str, schema: Any, *, include_deleted: bool = False) -> SubjectVersion:
        found = await self.store.find(subject, schema)
        if found is None:
            await self.require_subject(subject, include_deleted=include_deleted)
            raise RegistryError(404, errors.SCHEMA_NOT_FOUND, "Schema not found")
        return found

    async def delete_version(self, subject: str, version: int | None, *, permanent: bool) -> int:
        found = await self.store.version(subject, version, include_deleted=True)
        if found is None:
            await self.version(subject, version)  # raises the right 404
            raise AssertionError("unreachable")
        if permanent:
            if not found.deleted:
                raise RegistryError(404, errors.VERSION_NOT_SOFT_DELETED,
                                    f"Subject '{subject}' Version {found.version} was not deleted first before "
                                    "being permanently deleted")
            await self.store.hard_delete(subject, found.version)
            self._changed()
            self._forget(found.schema_id)
        else:
            if found.deleted:
                raise RegistryError(404, errors.VERSION_SOFT_DELETED,
                                    f"Subject '{subject}' Version {found.version} was soft deleted. "
                                    "Set permanent=true to delete permanently")
            await self.store.soft_delete(subject, found.version)
            self._changed()
        return found.version

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        all_versions = await self.store.versions(subject, include_deleted=True)
        if not all_versions:
            raise RegistryError(404, errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        live = [v for v in all_versions if not v.deleted]
        if permanent:
            if live:
                raise RegistryError(404, errors.SUBJECT_NOT_SOFT_DELETED,
                                    f"Subject '{subject}' was not deleted first before being permanently deleted")
            versions = await self.store.hard_delete(subject, None)
            self._changed()
            for v in all_versions:
                self._forget(v.schema_id)
            await self.store.delete_config(subject)
            return versions
        if not live:
            raise RegistryError(404, errors.SUBJECT_SOFT_DELETED,
                                f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")
        deleted = await self.store.soft_delete(subject, None)
        self._changed()
        return deleted

    def _changed(self) -> None:
        """After a write: which schema an event version resolves to may have changed."""
        self._generation += 1
        self._events.clear()

    def _forget(self, schema_id: int) -> None:
        self._bodies.pop(schema_id, None)
        self._compiled.pop(schema_id, None)

    async def seed(self, catalog: list[tuple[str, int, Any]]) -> list[str]:
        """Register every catalog schema that is not there yet, through the compatibility check."""
        problems = []
        for name, version, schema in catalog:
            try:
                result = await self.register(name, schema)
                if result.created:
                    log.info("seeded %s v%d as version %d", name, version, result.version)
            except RegistryError as exc:
                problems.append(f"{name} v{version}: {exc.message}")
                log.error("not seeding %s v%d: %s", name, version, exc.message)
        return problems
