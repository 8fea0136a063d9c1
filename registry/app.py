"""The schema registry HTTP API: Confluent Schema Registry's, plus /validate and /catalog."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventbus.db import database_url_for, plain_url
from registry import errors
from registry.auth import require_token
from registry.errors import RegistryError
from registry.seed import catalog
from registry.service import RegistryService, parse_mode, parse_policy, parse_schema
from registry.settings import RegistrySettings
from registry.store import RegistryStore

log = logging.getLogger(__name__)
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
WRITE = [Depends(require_token)]


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json(body: Any, status: int = 200) -> Response:
    return Response(_dumps(body), status_code=status, media_type=CONTENT_TYPE)


class HotReads:
    """Pure ASGI in front of FastAPI's routing for the two calls made at event rates: `GET /schemas/ids/{id}`
    when the body is cached, and `POST /validate`. FastAPI's route matching and dependency solving cost more
    than the work itself (`make bench-registry`); these answers are byte-for-byte what the routes below give,
    and everything else (a cache miss included) goes to FastAPI unchanged."""

    IDS = "/schemas/ids/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            service: RegistryService | None = getattr(scope["app"].state, "service", None)
            method, path = scope["method"], scope["path"]
            if service is not None and method == "GET" and path.startswith(self.IDS):
                digits = path[len(self.IDS):]
                body = service.cached_body(int(digits)) if digits.isascii() and digits.isdigit() else None
                if body is not None:
                    await _send(send, 200, body)
                    return
            elif service is not None and method == "POST" and path == "/validate":
                raw = await _read_body(receive)
                if raw is None:
                    return  # the client went away
                try:
                    status, answer = await service.validate_envelope(raw)
                except RegistryError as exc:
                    await exc.response()(scope, receive, send)
                    return
                await _send(send, status, _dumps(answer))
                return
        await self.app(scope, receive, send)


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", CONTENT_TYPE.encode())]})
    await send({"type": "http.response.body", "body": body})


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise RegistryError(422, errors.INVALID_SCHEMA, f"The request body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise RegistryError(422, errors.INVALID_SCHEMA, "The request body must be a JSON object")
    return body


def parse_version(raw: str) -> int | None:
    """"latest" / -1 -> None; otherwise a version number >= 1 (Confluent's 42202 when not)."""
    if raw in ("latest", "-1"):
        return None
    version = int(raw) if raw.isdigit() else 0
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
        service = RegistryService(RegistryStore(pool))
        if settings.registry_seed:
            problems = await service.seed(list(catalog(settings.schemas_dir)))
            log.info("schemas/ loaded%s", f" with {len(problems)} refused" if problems else "")
        app.state.service = service
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="schema registry", lifespan=lifespan)
    app.state.token = settings.registry_token
    app.add_middleware(HotReads)

    @app.exception_handler(RegistryError)
    async def registry_error(_request: Request, exc: RegistryError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error_code": 422, "message": "invalid request", "detail": exc.errors()}, 422)

    def svc(request: Request) -> RegistryService:
        service: RegistryService = request.app.state.service
        return service

    @app.get("/health", tags=["ops"])
    async def health(request: Request) -> JSONResponse:
        try:
            await svc(request).store.pool.fetchval("SELECT 1", timeout=2)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "checks": {"database": f"error: {exc!r}"}}, 503)
        return JSONResponse({"status": "ok", "checks": {"database": "ok"}})

    # -- subjects and versions ------------------------------------------------------------------
    @app.get("/subjects")
    async def subjects(request: Request, deleted: bool = False) -> Response:
        return _json(await svc(request).store.subjects(include_deleted=deleted))

    @app.get("/subjects/{subject}/versions")
    async def versions(subject: str, request: Request, deleted: bool = False) -> Response:
        found = await svc(request).store.versions(subject, include_deleted=deleted)
        if not found:
            raise RegistryError(404, errors.SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")
        return _json([v.version for v in found])

    @app.get("/subjects/{subject}/versions/{version}")
    async def get_version(subject: str, version: str, request: Request, deleted: bool = False) -> Response:
        return _json((await svc(request).version(subject, parse_version(version), include_deleted=deleted)).body())

    @app.get("/subjects/{subject}/versions/{version}/schema")
    async def get_version_schema(subject: str, version: str, request: Request) -> Response:
        found = await svc(request).version(subject, parse_version(version))
        return Response(found.schema, media_type=CONTENT_TYPE)

    @app.post("/subjects/{subject}/versions", dependencies=WRITE)
    async def register(subject: str, request: Request) -> Response:
        """Register a schema; identical content returns the existing id; incompatible is 409 with reasons."""
        result = await svc(request).register(subject, parse_schema(await _body(request)))
        return _json({"id": result.schema_id, "version": result.version})

    @app.post("/subjects/{subject}")
    async def lookup(subject: str, request: Request, deleted: bool = False) -> Response:
        """Is this schema registered under the subject? Its version and id if so."""
        found = await svc(request).lookup(subject, parse_schema(await _body(request)), include_deleted=deleted)
        return _json(found.body())

    @app.delete("/subjects/{subject}", dependencies=WRITE)
    async def delete_subject(subject: str, request: Request, permanent: bool = False) -> Response:
        return _json(await svc(request).delete_subject(subject, permanent=permanent))

    @app.delete("/subjects/{subject}/versions/{version}", dependencies=WRITE)
    async def delete_version(subject: str, version: str, request: Request, permanent: bool = False) -> Response:
        return _json(await svc(request).delete_version(subject, parse_version(version), permanent=permanent))

    # -- schemas by id ------------------------------------------------------------------------
    @app.get("/schemas/ids/{schema_id}")
    async def schema_by_id(schema_id: int, request: Request) -> Response:
        return Response(await svc(request).schema_body(schema_id), media_type=CONTENT_TYPE)

    @app.get("/schemas/ids/{schema_id}/schema")
    async def raw_schema_by_id(schema_id: int, request: Request) -> Response:
        text = await svc(request).store.schema(schema_id)
        if text is None:
            raise RegistryError(404, errors.SCHEMA_NOT_FOUND, f"Schema {schema_id} not found")
        return Response(text, media_type=CONTENT_TYPE)

    @app.get("/schemas/ids/{schema_id}/versions")
    async def schema_versions(schema_id: int, request: Request) -> Response:
        await svc(request).schema_body(schema_id)  # 40403 when unknown
        pairs = await svc(request).store.subjects_of_schema(schema_id)
        return _json([{"subject": s, "version": v} for s, v in pairs])

    @app.get("/schemas/ids/{schema_id}/subjects")
    async def schema_subjects(schema_id: int, request: Request) -> Response:
        await svc(request).schema_body(schema_id)
        return _json(sorted({s for s, _ in await svc(request).store.subjects_of_schema(schema_id)}))

    @app.get("/schemas/types")
    async def schema_types() -> Response:
        return _json(["JSON"])

    # -- compatibility --------------------------------------------------------------------------
    async def _compat(request: Request, subject: str, version: int | None, verbose: bool) -> Response:
        service = svc(request)
        schema = parse_schema(await _body(request))
        await service.require_subject(subject)
        result = await service.check(subject, schema, version)
        body: dict[str, Any] = {"is_compatible": result.compatible}
        if verbose:
            full = result.as_dict()
            body |= {"messages": full["messages"], "reasons": full["reasons"], "mode": full["mode"],
                     "policy": full["policy"], "checked_versions": full["checked_versions"]}
        return _json(body)

    @app.post("/compatibility/subjects/{subject}/versions/{version}")
    async def compatibility(subject: str, version: str, request: Request, verbose: bool = False) -> Response:
        return await _compat(request, subject, parse_version(version), verbose)

    @app.post("/compatibility/subjects/{subject}/versions")
    async def compatibility_all(subject: str, request: Request, verbose: bool = False) -> Response:
        return await _compat(request, subject, None, verbose)

    # -- config ---------------------------------------------------------------------------------
    @app.get("/config")
    async def get_global_config(request: Request) -> Response:
        mode, policy = await svc(request).config(None)
        return _json({"compatibilityLevel": mode.value, "policy": policy.value})

    @app.put("/config", dependencies=WRITE)
    async def put_global_config(request: Request) -> Response:
        return await _put_config(request, None)

    @app.get("/config/{subject}")
    async def get_subject_config(subject: str, request: Request, defaultToGlobal: bool = False) -> Response:
        compatibility, policy, own = await svc(request).store.config(subject)
        if not own and not defaultToGlobal:
            raise RegistryError(404, errors.SUBJECT_CONFIG_NOT_FOUND,
                                f"Subject '{subject}' does not have subject-level compatibility configured")
        return _json({"compatibilityLevel": compatibility, "policy": policy})

    @app.put("/config/{subject}", dependencies=WRITE)
    async def put_subject_config(subject: str, request: Request) -> Response:
        return await _put_config(request, subject)

    @app.delete("/config/{subject}", dependencies=WRITE)
    async def delete_subject_config(subject: str, request: Request) -> Response:
        compatibility, policy, own = await svc(request).store.config(subject)
        if not own:
            raise RegistryError(404, errors.SUBJECT_CONFIG_NOT_FOUND,
                                f"Subject '{subject}' does not have subject-level compatibility configured")
        await svc(request).store.delete_config(subject)
        return _json({"compatibilityLevel": compatibility, "policy": policy})

    async def _put_config(request: Request, subject: str | None) -> Response:
        body = await _body(request)
        current_mode, current_policy = await svc(request).config(subject)
        mode = parse_mode(body["compatibility"]) if "compatibility" in body else current_mode
        policy = parse_policy(body["policy"]) if "policy" in body else current_policy
        await svc(request).store.set_config(subject, mode.value, policy.value)
        return _json({"compatibility": mode.value, "policy": policy.value})

    # -- ours: the client's lookup by event version, and envelope validation --------------------
    @app.get("/catalog/{event_name}/{event_version}")
    async def catalog_entry(event_name: str, event_version: int, request: Request) -> Response:
        """The schema of one event version (what `eventbus.schemas.client.SchemaClient` asks for)."""
        found = await svc(request).event_schema(event_name, event_version)
        return _json({**found.body(), "event_version": found.event_version})

    @app.post("/validate")
    async def validate(request: Request) -> Response:
        """An envelope in; 200 {"valid": true, "schema_id"} or 422 with every error and its JSON pointer.
        (Served by `HotReads`; this route documents it and answers identically.)"""
        status, answer = await svc(request).validate_envelope(await request.body())
        return _json(answer, status)

    return app

