"""The schema client every producer and consumer uses: fetch once, compile once, validate locally.

Lookups go to the registry (`GET /catalog/{event}/{version}`) the first time and are cached for the
life of the process; the hot path never calls HTTP per event. When the registry is unreachable the
client falls back to `schemas/` on disk, if configured. A definitive "unknown" answer is cached for
`negative_ttl` seconds so that a flood of poison events does not become a flood of HTTP calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from eventbus.envelope import Envelope, identity
from eventbus.schemas.validation import CompiledSchema, SchemaIssue

log = logging.getLogger(__name__)


class UnknownSchemaError(LookupError):
    """The registry does not know this event name or version: the event can never become valid."""

    def __init__(self, event_name: str, event_version: int, detail: str = "") -> None:
        super().__init__(f"no schema for {event_name} v{event_version}" + (f": {detail}" if detail else ""))
        self.event_name = event_name
        self.event_version = event_version


class RegistryUnavailableError(ConnectionError):
    """The registry could not be asked and the schema is not on disk: retry later."""


class SchemaClient:
    def __init__(
        self,
        registry_url: str | None,
        *,
        fallback_dir: Path | None = None,
        timeout: float = 2.0,
        negative_ttl: float = 30.0,
    ) -> None:
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.fallback_dir = fallback_dir
        self.timeout = timeout
        self.negative_ttl = negative_ttl
        self._cache: dict[tuple[str, int], CompiledSchema] = {}
        self._unknown: dict[tuple[str, int], float] = {}
        self._inflight: dict[tuple[str, int], asyncio.Future[CompiledSchema]] = {}
        self._http: httpx.AsyncClient | None = None
        self.fetches = 0
        self.fallbacks = 0

    def cached(self, event_name: str, event_version: int) -> CompiledSchema | None:
        return self._cache.get((event_name, event_version))

    async def get(self, event_name: str, event_version: int) -> CompiledSchema:
        key = (event_name, event_version)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if time.monotonic() < self._unknown.get(key, 0.0):
            raise UnknownSchemaError(event_name, event_version, "registry said so recently")
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CompiledSchema] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            compiled = await self._load(event_name, event_version)
            self._cache[key] = compiled
            future.set_result(compiled)
            return compiled
        except BaseException as exc:
            if isinstance(exc, UnknownSchemaError):
                self._unknown[key] = time.monotonic() + self.negative_ttl
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def preload(self, pairs: list[tuple[str, int]]) -> None:
        for name, version in pairs:
            await self.get(name, version)

    async def validate(self, envelope: Envelope) -> tuple[CompiledSchema, list[SchemaIssue]]:
        """The schema for the envelope's (event_name, event_version) and every violation of it."""
        name, version = identity(envelope)
        compiled = await self.get(name, version)
        if compiled.is_valid(envelope):
            return compiled, []
        return compiled, compiled.issues(envelope)

    async def _load(self, event_name: str, event_version: int) -> CompiledSchema:
        if self.registry_url is not None:
            try:
                return await self._fetch(event_name, event_version)
            except RegistryUnavailableError as exc:
                from_disk = self._from_disk(event_name, event_version)
                if from_disk is None:
                    raise
                log.warning("registry unreachable (%s); using %s v%s from disk", exc, event_name, event_version)
                self.fallbacks += 1
                return from_disk
        from_disk = self._from_disk(event_name, event_version)
        if from_disk is None:
            raise UnknownSchemaError(event_name, event_version, f"not in {self.fallback_dir}")
        return from_disk

    async def _fetch(self, event_name: str, event_version: int) -> CompiledSchema:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self.timeout)
        url = f"{self.registry_url}/catalog/{event_name}/{event_version}"
        self.fetches += 1
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise RegistryUnavailableError(f"GET {url}: {exc!r}") from exc
        if response.status_code == 404:
            raise UnknownSchemaError(event_name, event_version, response.text[:200])
        if response.status_code >= 500:
            raise RegistryUnavailableError(f"GET {url}: HTTP {response.status_code}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return CompiledSchema(event_name, event_version, json.loads(body["schema"]), body["id"])

    def _from_disk(self, event_name: str, event_version: int) -> CompiledSchema | None:
        if self.fallback_dir is None:
            return None
        path = self.fallback_dir / event_name / f"v{event_version}.json"
        if not path.is_file():
            return None
        return CompiledSchema(event_name, event_version, json.loads(path.read_text()))

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
