"""The registry's PostgreSQL store: schemas by content hash, subject versions, config."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventbus.schemas.validation import event_version_of


def canonical(schema: Any) -> str:
    """One text per schema meaning: sorted keys, no insignificant whitespace."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    event_version: int | None
    deleted: bool

    def body(self) -> dict[str, Any]:
        return {"subject": self.subject, "version": self.version, "id": self.schema_id,
                "schemaType": "JSON", "schema": self.schema}


_SV = """
SELECT sv.subject, sv.version, sv.schema_id, s.content, sv.event_version, sv.deleted
FROM subject_versions sv JOIN schemas s ON s.id = sv.schema_id
"""


def _sv(record: asyncpg.Record) -> SubjectVersion:
    return SubjectVersion(record["subject"], record["version"], record["schema_id"], record["content"],
                          record["event_version"], record["deleted"])


class RegistryStore:
    """Queries on the pool, or (from `locked`) on one transaction that holds a subject's write lock."""

    def __init__(self, pool: asyncpg.Pool | asyncpg.Connection) -> None:
        self.pool = pool

    @asynccontextmanager
    async def locked(self, subject: str) -> AsyncIterator[RegistryStore]:
        """A store on one transaction holding `subject`'s write lock, so that what a writer reads (history,
        config) is still true when it writes: one writer per subject at a time, across registry processes.
        Everything inside must go through the store yielded (a second pool connection could deadlock)."""
        if not isinstance(self.pool, asyncpg.Pool):
            raise RuntimeError("locked() is taken on the pool's store, once")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", subject)
            yield RegistryStore(conn)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(self.pool, asyncpg.Pool):
            async with self.pool.acquire() as conn, conn.transaction():
                yield conn
        else:
            async with self.pool.transaction():  # a savepoint inside the locked transaction
                yield self.pool

    async def subjects(self, *, include_deleted: bool = False) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT subject FROM subject_versions WHERE $1 OR NOT deleted ORDER BY subject",
            include_deleted)
        return [r["subject"] for r in rows]

    async def versions(self, subject: str, *, include_deleted: bool = False) -> list[SubjectVersion]:
        rows = await self.pool.fetch(
            _SV + " WHERE sv.subject = $1 AND ($2 OR NOT sv.deleted) ORDER BY sv.version", subject, include_deleted)
        return [_sv(r) for r in rows]

    async def subject_exists(self, subject: str, *, include_deleted: bool = False) -> bool:
        return bool(await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM subject_versions WHERE subject = $1 AND ($2 OR NOT deleted))",
            subject, include_deleted))

    async def version(self, subject: str, version: int | None, *, include_deleted: bool = False
                      ) -> SubjectVersion | None:
        """`version=None` is "latest"."""
        if version is None:
            row = await self.pool.fetchrow(
                _SV + " WHERE sv.subject = $1 AND NOT sv.deleted ORDER BY sv.version DESC LIMIT 1", subject)
        else:
            row = await self.pool.fetchrow(
                _SV + " WHERE sv.subject = $1 AND sv.version = $2 AND ($3 OR NOT sv.deleted)",
                subject, version, include_deleted)
        return _sv(row) if row else None

    async def by_event_version(self, subject: str, event_version: int) -> SubjectVersion | None:
        row = await self.pool.fetchrow(
            _SV + " WHERE sv.subject = $1 AND sv.event_version = $2 AND NOT sv.deleted"
                  " ORDER BY sv.version DESC LIMIT 1", subject, event_version)
        return _sv(row) if row else None

    async def schema(self, schema_id: int) -> str | None:
        content: str | None = await self.pool.fetchval("SELECT content FROM schemas WHERE id = $1", schema_id)
        return content

    async def find(self, subject: str, schema: Any) -> SubjectVersion | None:
        """The live version of `subject` whose content equals `schema`, if any."""
        row = await self.pool.fetchrow(
            _SV + " WHERE sv.subject = $1 AND s.content_hash = $2 AND NOT sv.deleted"
                  " ORDER BY sv.version DESC LIMIT 1", subject, content_hash(canonical(schema)))
        return _sv(row) if row else None

    async def add_version(self, subject: str, schema: Any) -> SubjectVersion:
        """Register `schema` under `subject` (the caller has checked compatibility, on a `locked(subject)` store
        so that the check and this write see the same history). Identical content already live under the
        subject returns that version; the same content elsewhere reuses its id."""
        if isinstance(self.pool, asyncpg.Pool):
            async with self.locked(subject) as store:
                return await store.add_version(subject, schema)
        text = canonical(schema)
        digest = content_hash(text)
        event_version = event_version_of(schema) if isinstance(schema, dict) else None
        conn = self.pool
        existing = await conn.fetchrow(
            _SV + " WHERE sv.subject = $1 AND s.content_hash = $2 AND NOT sv.deleted", subject, digest)
        if existing:
            return _sv(existing)
        schema_id = await conn.fetchval(
            "INSERT INTO schemas (content, content_hash) VALUES ($1, $2) "
            "ON CONFLICT (content_hash) DO UPDATE SET content_hash = EXCLUDED.content_hash RETURNING id",
            text, digest)
        version = await conn.fetchval(
            "SELECT coalesce(max(version), 0) + 1 FROM subject_versions WHERE subject = $1", subject)
        await conn.execute(
            "INSERT INTO subject_versions (subject, version, schema_id, event_version) VALUES ($1, $2, $3, $4)",
            subject, version, schema_id, event_version)
        return SubjectVersion(subject, version, schema_id, text, event_version, False)

    async def config(self, subject: str | None) -> tuple[str, str, bool]:
        """(compatibility, policy, subject-level?) for a subject, falling back to the global default."""
        rows = await self.pool.fetch(
            "SELECT subject, compatibility, policy FROM registry_config WHERE subject = '' OR subject = $1",
            subject or "")
        by_subject = {r["subject"]: r for r in rows}
        row = by_subject.get(subject or "") or by_subject[""]
        return row["compatibility"], row["policy"], bool(subject) and subject in by_subject

    async def set_config(self, subject: str | None, compatibility: str, policy: str) -> None:
        await self.pool.execute(
            "INSERT INTO registry_config (subject, compatibility, policy) VALUES ($1, $2, $3) "
            "ON CONFLICT (subject) DO UPDATE SET compatibility = $2, policy = $3, updated_at = now()",
            subject or "", compatibility, policy)

    async def delete_config(self, subject: str) -> bool:
        status: str = await self.pool.execute("DELETE FROM registry_config WHERE subject = $1", subject)
        return status.endswith(" 1")

    async def soft_delete(self, subject: str, version: int | None) -> list[int]:
        """Mark live versions deleted (all when `version` is None); return their numbers."""
        rows = await self.pool.fetch(
            "UPDATE subject_versions SET deleted = true WHERE subject = $1 AND NOT deleted "
            "AND ($2::int IS NULL OR version = $2) RETURNING version", subject, version)
        return sorted(r["version"] for r in rows)

    async def hard_delete(self, subject: str, version: int | None) -> list[int]:
        """Remove soft-deleted versions for good; schemas no subject uses any more go too (ids stay burnt)."""
        async with self._transaction() as conn:
            rows = await conn.fetch(
                "DELETE FROM subject_versions WHERE subject = $1 AND deleted "
                "AND ($2::int IS NULL OR version = $2) RETURNING version, schema_id", subject, version)
            ids = list({r["schema_id"] for r in rows})
            await conn.execute(
                "DELETE FROM schemas s WHERE s.id = ANY($1::bigint[]) "
                "AND NOT EXISTS (SELECT 1 FROM subject_versions sv WHERE sv.schema_id = s.id)", ids)
        return sorted(r["version"] for r in rows)

    async def subjects_of_schema(self, schema_id: int) -> list[tuple[str, int]]:
        rows = await self.pool.fetch(
            "SELECT subject, version FROM subject_versions WHERE schema_id = $1 AND NOT deleted "
            "ORDER BY subject, version", schema_id)
        return [(r["subject"], r["version"]) for r in rows]
