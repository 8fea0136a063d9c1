"""The reads made at event rates: a schema by id, and an envelope validated against the schema its event
version resolves to. Both answer from `ReadCaches` when they can (`registry.hot` serves them ahead of routing).
"""

from __future__ import annotations

import json
from typing import Any

from eventbus.schemas.validation import CompiledSchema
from registry import errors
from registry.caches import ReadCaches
from registry.errors import RegistryError
from registry.store import RegistryStore, SubjectVersion


class EventSchemas:
    def __init__(self, store: RegistryStore, caches: ReadCaches) -> None:
        self.store = store
        self.caches = caches

    async def schema_body(self, schema_id: int) -> bytes:
        """The answer to `GET /schemas/ids/{id}` (40403 when unknown), cached: a schema never changes."""
        body = self.caches.bodies.get(schema_id)
        if body is None:
            generation = self.caches.generation
            text = await self.store.schema(schema_id)
            if text is None:
                raise RegistryError(errors.SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
            body = json.dumps({"schema": text, "schemaType": "JSON", "references": []},
                              separators=(",", ":")).encode()
            self.caches.keep_body(schema_id, body, generation)
        return body

    def cached_body(self, schema_id: int) -> bytes | None:
        """`schema_body` when it is cached (the fast path), else None."""
        return self.caches.bodies.get(schema_id)

    async def event_schema(self, name: str, version: int) -> SubjectVersion:
        """The live schema that event `name` version `version` resolves to (40410 / 40411 when none)."""
        found = self.caches.event(name, version)
        if found is not None:
            return found
        generation = self.caches.generation
        found = await self.store.by_event_version(name, version)
        if found is None:
            self.caches.drop_event(name, version)
            if not await self.store.subject_exists(name):
                raise RegistryError(errors.UNKNOWN_EVENT, f"Unknown event '{name}'.")
            raise RegistryError(errors.UNKNOWN_EVENT_VERSION, f"Event '{name}' has no version {version}.")
        self.caches.keep_event(name, version, found, generation)
        return found

    async def validate(self, envelope: dict[str, Any], name: str, version: int) -> dict[str, Any]:
        """`POST /validate` of an envelope whose identity is (`name`, `version`): the verdict when it is valid,
        else `ENVELOPE_BREAKS_SCHEMA` with every error and its JSON pointer."""
        found = await self.event_schema(name, version)
        compiled = self.compiled(found)
        if compiled.is_valid(envelope):
            return {"valid": True, "schema_id": found.schema_id, "subject": name, "version": found.version}
        issues = [i.as_dict() for i in compiled.issues(envelope)]
        raise RegistryError(errors.ENVELOPE_BREAKS_SCHEMA, f"{len(issues)} error(s) against {name} v{version}",
                            valid=False, schema_id=found.schema_id, errors=issues)

    def compiled(self, found: SubjectVersion) -> CompiledSchema:
        hit = self.caches.compiled.get(found.schema_id)
        if hit is None:
            hit = CompiledSchema(found.subject, found.event_version or 0, json.loads(found.schema), found.schema_id)
            self.caches.compiled[found.schema_id] = hit
        return hit
