"""Registry operations with Confluent's semantics, in the registry's vocabulary: refusals are `RegistryError`s
with Confluent's error codes; no HTTP and no request parsing here (that is `registry.http`, `registry.parsing`).

Every write to a subject (register, delete) runs on one transaction holding the subject's lock
(`RegistryStore.locked`): what a registration is checked against is still the history it is added to.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from registry import errors
from registry.caches import ReadCaches
from registry.compat import Mode, Policy, Verdict, verdict
from registry.errors import RegistryError
from registry.schema_rules import identity_findings, require_valid
from registry.store import RegistryStore, SubjectVersion
from registry.validation import EventSchemas

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    schema_id: int
    version: int
    created: bool


class RegistryService(EventSchemas):
    """The store plus the per-process caches (`ReadCaches`); the event-version reads behind `/validate` and
    `/catalog` are `EventSchemas`'."""

    def __init__(self, store: RegistryStore, caches: ReadCaches | None = None) -> None:
        super().__init__(store, caches or ReadCaches())

    # -- reads --------------------------------------------------------------------------------
    async def subjects(self, *, include_deleted: bool = False) -> list[str]:
        return await self.store.subjects(include_deleted=include_deleted)

    async def versions(self, subject: str, *, include_deleted: bool = False) -> list[int]:
        found = await self.store.versions(subject, include_deleted=include_deleted)
        if not found:
            raise RegistryError(errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        return [v.version for v in found]

    async def require_subject(self, subject: str, *, include_deleted: bool = False) -> None:
        if not await self.store.subject_exists(subject, include_deleted=include_deleted):
            raise RegistryError(errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")

    async def version(self, subject: str, version: int | None, *, include_deleted: bool = False) -> SubjectVersion:
        """`version=None` is the latest live version."""
        found = await self.store.version(subject, version, include_deleted=include_deleted)
        if found is None:
            await self.require_subject(subject, include_deleted=True)
            raise RegistryError(errors.VERSION_NOT_FOUND,
                                f"Version {'latest' if version is None else version} not found.")
        return found

    async def schema_text(self, schema_id: int) -> str:
        text = await self.store.schema(schema_id)
        if text is None:
            raise RegistryError(errors.SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
        return text

    async def schema_users(self, schema_id: int) -> list[tuple[str, int]]:
        """(subject, version) of every live version holding schema `schema_id` (40403 when there is none)."""
        await self.schema_body(schema_id)
        return await self.store.subjects_of_schema(schema_id)

    # -- config -------------------------------------------------------------------------------
    async def config(self, subject: str | None) -> tuple[Mode, Policy]:
        """The subject's mode and policy, else the global ones (`subject=None`: the global ones)."""
        mode, policy, _ = await self.store.config(subject)
        return Mode(mode), Policy(policy)

    async def subject_config(self, subject: str, *, default_to_global: bool = False) -> tuple[Mode, Policy]:
        mode, policy, own = await self.store.config(subject)
        if not own and not default_to_global:
            raise RegistryError(errors.SUBJECT_CONFIG_NOT_FOUND,
                                f"Subject '{subject}' does not have subject-level compatibility configured")
        return Mode(mode), Policy(policy)

    async def set_config(self, subject: str | None, mode: Mode | None, policy: Policy | None) -> tuple[Mode, Policy]:
        """Change what is given, keep the rest (a subject's own config starts from what applies to it now)."""
        current_mode, current_policy = await self.config(subject)
        mode, policy = mode or current_mode, policy or current_policy
        await self.store.set_config(subject, mode.value, policy.value)
        return mode, policy

    async def delete_config(self, subject: str) -> tuple[Mode, Policy]:
        """Drop the subject's own config; what it was (40408 when it had none)."""
        mode, policy = await self.subject_config(subject)
        await self.store.delete_config(subject)
        return mode, policy

    # -- compatibility ------------------------------------------------------------------------
    async def check(self, subject: str, schema: Any, version: int | None = None) -> Verdict:
        """`version=None`: the subject's mode over its history; a number: the mode's directions vs that one.
        40401 when the subject has no live version, 42201 when `schema` is not one the registry takes."""
        require_valid(schema)
        await self.require_subject(subject)
        return await self._verdict(self.store, subject, schema, version)

    async def _verdict(self, store: RegistryStore, subject: str, schema: Any, version: int | None) -> Verdict:
        mode_name, policy_name, _ = await store.config(subject)
        mode, policy = Mode(mode_name), Policy(policy_name)
        live = await store.versions(subject)
        if version is None:
            history = [(v.version, json.loads(v.schema)) for v in live]
        else:
            target = await store.version(subject, version)
            if target is None:
                raise RegistryError(errors.VERSION_NOT_FOUND, f"Version {version} not found.")
            history = [(target.version, json.loads(target.schema))]
            mode = Mode(mode.value.removesuffix("_TRANSITIVE"))
        result = verdict(schema, history, mode, policy)
        identity = identity_findings(subject, schema, live)
        return Verdict(result.mode, result.policy, result.checked_versions, identity + list(result.findings))

    # -- writes -------------------------------------------------------------------------------
    async def register(self, subject: str, schema: Any) -> Registered:
        """Identical content live under the subject returns its version; otherwise the schema is checked
        against the subject's history and added, both under the subject's lock (409 with reasons when not)."""
        require_valid(schema)
        existing = await self.store.find(subject, schema)
        if existing is not None:
            return Registered(existing.schema_id, existing.version, created=False)
        async with self.store.locked(subject) as store:
            existing = await store.find(subject, schema)  # registered while this one waited for the lock
            if existing is not None:
                return Registered(existing.schema_id, existing.version, created=False)
            result = await self._verdict(store, subject, schema, None)
            if not result.compatible:
                raise RegistryError(
                    errors.INCOMPATIBLE,
                    f"Schema being registered is incompatible with an earlier schema for subject \"{subject}\" "
                    f"({result.mode.value}, {result.policy.value}), details: "
                    f"{[f.message() for f in result.findings]}",
                    reasons=[f.as_dict() for f in result.findings])
            added = await store.add_version(subject, schema)
        self.caches.changed()
        log.info("registered %s version %d (id %d)", subject, added.version, added.schema_id)
        return Registered(added.schema_id, added.version, created=True)

    async def lookup(self, subject: str, schema: Any, *, include_deleted: bool = False) -> SubjectVersion:
        require_valid(schema)
        found = await self.store.find(subject, schema)
        if found is None:
            await self.require_subject(subject, include_deleted=include_deleted)
            raise RegistryError(errors.SCHEMA_NOT_FOUND, "Schema not found")
        return found

    async def delete_version(self, subject: str, version: int | None, *, permanent: bool) -> int:
        async with self.store.locked(subject) as store:
            found = await store.version(subject, version, include_deleted=True)
            if found is None:
                if not await store.subject_exists(subject, include_deleted=True):
                    raise RegistryError(errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
                raise RegistryError(errors.VERSION_NOT_FOUND,
                                    f"Version {'latest' if version is None else version} not found.")
            if permanent:
                if not found.deleted:
                    raise RegistryError(errors.VERSION_NOT_SOFT_DELETED,
                                        f"Subject '{subject}' Version {found.version} was not deleted first before "
                                        "being permanently deleted")
                await store.hard_delete(subject, found.version)
            else:
                if found.deleted:
                    raise RegistryError(errors.VERSION_SOFT_DELETED,
                                        f"Subject '{subject}' Version {found.version} was soft deleted. "
                                        "Set permanent=true to delete permanently")
                await store.soft_delete(subject, found.version)
        self.caches.changed()
        if permanent:
            self.caches.forget(found.schema_id)
        return found.version

    async def delete_subject(self, subject: str, *, permanent: bool) -> list[int]:
        async with self.store.locked(subject) as store:
            all_versions = await store.versions(subject, include_deleted=True)
            if not all_versions:
                raise RegistryError(errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
            live = [v for v in all_versions if not v.deleted]
            if permanent:
                if live:
                    raise RegistryError(errors.SUBJECT_NOT_SOFT_DELETED,
                                        f"Subject '{subject}' was not deleted first before being permanently deleted")
                deleted = await store.hard_delete(subject, None)
                await store.delete_config(subject)
            elif not live:
                raise RegistryError(errors.SUBJECT_SOFT_DELETED,
                                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")
            else:
                deleted = await store.soft_delete(subject, None)
        self.caches.changed()
        if permanent:
            for v in all_versions:
                self.caches.forget(v.schema_id)
        return deleted

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

