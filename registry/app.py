"""The schema registry HTTP API, modelled on Confluent Schema Registry, plus /validate and /catalog."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from eventbus.db import database_url_for, plain_url
from eventbus.envelope import EnvelopeError, identity
from registry import errors
from registry.errors import RegistryError
from registry.seed import catalog
from registry.settings import RegistrySettings
from registry.store import RegistryStore
from registry.validation import CompiledSchema

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=CONTENT_TYPE)


class Registry:
    """Per-process state: the store and caches of immutable things (schema text by id, validators)."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store
        self._schema_bodies: dict[int, bytes] = {}
        self._compiled: dict[int, CompiledSchema] = {}

    async def schema_body(self, schema_id: int) -> bytes:
        body = self._schema_bodies.get(schema_id)
        if body is None:
            text = await self.store.schema(schema_id)
            if text is None:
                raise RegistryError(404, errors.SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
            body = json.dumps({"schema": text, "schemaType": "JSON"}, separators=(",", ":")).encode()
            self._schema_bodies[schema_id] = body
        return body

    def forget(self, schema_ids: list[int]) -> None:
        for schema_id in schema_ids:
            self._schema_bodies.pop(schema_id, None)
            self._compiled.pop(schema_id, None)

    def compiled(self, name: str, event_version: int, schema_id: int, text: str) -> CompiledSchema:
        hit = self._compiled.get(schema_id)
        if hit is None:
            hit = self._compiled[schema_id] = CompiledSchema(name, event_version, json.loads(text), schema_id)
        return hit

    async def seed(self, schemas_dir: Any) -> int:
        added = 0
        for name, version, schema in catalog(schemas_dir):
            if await self.store.find(name, schema) is None:
                await self.store.add_version(name, schema)
                added += 1
                log.info("registered %s v%d", name, version)
        return added


def parse_version(raw: str) -> int | None:
    if raw in ("latest", "-1"):
        return None
    try:
        version = int(raw)
    except ValueError:
        version = 0
    if version < 1:
        raise RegistryError(422, errors.INVALID_VERSION,
                            f"The specified version '{raw}' is not a valid version id. "
                            "Allowed values are between [1, 2^31-1] and the string \"latest\"")
    return version


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await asyncpg.create_pool(plain_url(database_url_for(settings.database_url, "registry")),
                                         min_size=2, max_size=10)
        registry = Registry(RegistryStore(pool))
        if settings.registry_seed:
            added = await registry.seed(settings.schemas_dir)
            log.info("seeded %d schema versions from %s", added, settings.schemas_dir)
        app.state.registry = registry
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="schema registry", lifespan=lifespan)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error_code": 422, "message": "invalid request", "detail": exc.errors()},
                            status_code=422)

    def reg(request: Request) -> Registry:
        registry: Registry = request.app.state.registry
        return registry

    @app.get("/health", tags=["ops"])
    async def health(request: Request) -> JSONResponse:
        try:
            await reg(request).store.pool.fetchval("SELECT 1", timeout=2)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "checks": {"database": f"error: {exc!r}"}}, 503)
        return JSONResponse({"status": "ok", "checks": {"database": "ok"}})

    @app.get("/subjects")
    async def subjects(request: Request, deleted: bool = False) -> Response:
        return _json(await reg(request).store.subjects(include_deleted=deleted))

    @app.get("/subjects/{subject}/versions")
    async def versions(subject: str, request: Request, deleted: bool = False) -> Response:
        found = await reg(request).store.versions(subject, include_deleted=deleted)
        if not found:
            raise RegistryError(404, errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        return _json([v.version for v in found])

    @app.get("/subjects/{subject}/versions/{version}")
    async def get_version(subject: str, version: str, request: Request, deleted: bool = False) -> Response:
        number = parse_version(version)
        store = reg(request).store
        found = await store.version(subject, number, include_deleted=deleted)
        if found is None:
            if not await store.subject_exists(subject, include_deleted=True):
                raise RegistryError(404, errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
            raise RegistryError(404, errors.VERSION_NOT_FOUND, f"Version {version} not found.")
        return _json(found.body())

    @app.get("/subjects/{subject}/versions/{version}/schema")
    async def get_version_schema(subject: str, version: str, request: Request) -> Response:
        found = await reg(request).store.version(subject, parse_version(version))
        if found is None:
            raise RegistryError(404, errors.VERSION_NOT_FOUND, f"Version {version} not found.")
        return Response(found.schema, media_type=CONTENT_TYPE)

    @app.get("/schemas/ids/{schema_id}")
    async def schema_by_id(schema_id: int, request: Request) -> Response:
        return Response(await reg(request).schema_body(schema_id), media_type=CONTENT_TYPE)

    @app.get("/catalog/{event_name}/{event_version}")
    async def catalog_entry(event_name: str, event_version: int, request: Request) -> Response:
        """The schema of one event version (what `registry.client.SchemaClient` asks for)."""
        store = reg(request).store
        found = await store.by_event_version(event_name, event_version)
        if found is None:
            if not await store.subject_exists(event_name):
                raise RegistryError(404, errors.UNKNOWN_EVENT, f"Unknown event '{event_name}'.")
            raise RegistryError(404, errors.UNKNOWN_EVENT_VERSION,
                                f"Event '{event_name}' has no version {event_version}.")
        return _json({**found.body(), "event_version": found.event_version})

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        """An envelope in; 200 {"valid": true, "schema_id"} or 422 with every error and its JSON pointer."""
        registry = reg(request)
        try:
            envelope = json.loads(await request.body())
            if not isinstance(envelope, dict) or not isinstance(envelope.get("meta"), dict):
                raise EnvelopeError("expected an object with a `meta` object")
            name, version = identity(envelope)
        except (ValueError, EnvelopeError) as exc:
            raise RegistryError(422, errors.INVALID_ENVELOPE, f"Not an event envelope: {exc}") from exc
        found = await registry.store.by_event_version(name, version)
        if found is None:
            if not await registry.store.subject_exists(name):
                raise RegistryError(404, errors.UNKNOWN_EVENT, f"Unknown event '{name}'.")
            raise RegistryError(404, errors.UNKNOWN_EVENT_VERSION, f"Event '{name}' has no version {version}.")
        compiled = registry.compiled(name, version, found.schema_id, found.schema)
        if compiled.is_valid(envelope):
            return _json({"valid": True, "schema_id": found.schema_id, "subject": name, "version": found.version})
        issues = [i.as_dict() for i in compiled.issues(envelope)]
        return _json({"valid": False, "error_code": errors.ENVELOPE_DOES_NOT_MATCH, "schema_id": found.schema_id,
                      "message": f"{len(issues)} error(s) against {name} v{version}", "errors": issues}, 422)

    return app
