"""One app skeleton for every HTTP service: resources opened in the lifespan, errors mapped, health routes.

A service keeps only its routes and its domain wiring:

    app = service_app("management", open_resources=lambda: ManagementResources(settings),
                      routers=[routes.router], request_fields=routes.REQUEST_FIELDS)

Routes reach the resources with `resources_of(request)`.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventbus.health import Probe
from eventbus.webapi import ErrorOut, ValidationOut, health_router, install_error_handlers


class Resources(Protocol):
    """What a service opens once per process: engines, clients, probes for /health."""

    def probes(self) -> Mapping[str, Probe]: ...

    async def close(self) -> None: ...


Opener = Callable[[], "Resources | Awaitable[Resources]"]


def resources_of(request: Request) -> Any:
    return request.app.state.resources


class InstanceHeader:
    """Every answer names the instance that gave it (`x-server-instance`, seed 002)."""

    def __init__(self, app: ASGIApp, instance: str) -> None:
        self.app = app
        self.header = (b"x-server-instance", instance.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, with_header)


def json_depth(body: bytes, limit: int) -> int:
    """How deep `body`'s arrays and objects nest, counted up to `limit` + 1 (strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= limit:  # C-speed: a body this flat needs no scan
        return min(limit, body.count(b"[") + body.count(b"{"))
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


#: request bodies larger than this are refused with 413 (1 MB)
MAX_BODY_BYTES = 1_000_000
#: request bodies nested deeper than this are refused with 422 (no request of ours nests beyond 2)
MAX_BODY_DEPTH = 32


class BodyGuard:
    """Bodies the JSON parser must not see: too large (413), or nested deeper than any request of ours
    (422; Python's parser would recurse until it fails with a 500). The body is read once and handed on."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, max_depth: int = MAX_BODY_DEPTH) -> None:
        self.app, self.max_bytes, self.max_depth = app, max_bytes, max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _answer(send, 413, {"detail": f"the request body is larger than {self.max_bytes} bytes"})
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if json_depth(body, self.max_depth) > self.max_depth:
            await _answer(send, 422, {"detail": [{"loc": ["body"], "msg": f"JSON nested deeper than {self.max_depth} "
                                                  "levels", "type": "value_error.json_depth"}]})
            return
        await self.app(scope, replay_body(body, receive), send)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands on a body already read, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _answer(send: Send, status: int, body: dict[str, object]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def _component(doc: dict[str, Any], model: type[BaseModel]) -> dict[str, str]:
    """A `$ref` to `model`'s schema, added to the document's components (with the models it uses)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="serialization")
    for name, sub in schema.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault(model.__name__, schema)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def install_openapi(app: FastAPI, *, body_guard: bool) -> None:
    """The document says what the skeleton answers, whatever a route declares: a 422 is the shape
    `eventbus.webapi.validation_body` writes (not FastAPI's HTTPValidationError), on every operation that takes
    parameters or a body; and with the body guard, 413 (too large) and 422 (nested too deeply) on every
    operation that takes a body. Built once, on the first request for it."""
    built = app.openapi  # FastAPI's, with every setting of the app

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = built()
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                answers = operation.setdefault("responses", {})
                takes_body = "requestBody" in operation
                if operation.get("parameters") or takes_body:
                    shown = answers.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
                    if "422" not in answers or shown.get("$ref", "").endswith("/HTTPValidationError"):
                        answers["422"] = {**_DESCRIBED_422, "content": {
                            "application/json": {"schema": _component(doc, ValidationOut)}}}
                if body_guard and takes_body and "413" not in answers:
                    answers["413"] = {"description": f"the request body is larger than {MAX_BODY_BYTES} bytes",
                                      "content": {"application/json": {"schema": _component(doc, ErrorOut)}}}
        schemas = doc.get("components", {}).get("schemas", {})
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, replaced above
            if f'"#/components/schemas/{unused}"' not in json.dumps(doc):
                schemas.pop(unused, None)
        return doc

    app.openapi = document  # type: ignore[method-assign]


_DESCRIBED_422 = {"description": "invalid request: every problem with its location (a body nested deeper than "
                                 f"{MAX_BODY_DEPTH} levels is one)"}


def instance_name(service: str) -> str:
    """SERVER_INSTANCE when set (compose sets one per replica), else service@host:pid."""
    return os.environ.get("SERVER_INSTANCE") or f"{service}@{socket.gethostname()}:{os.getpid()}"


def service_app(
    title: str,
    *,
    open_resources: Opener,
    routers: Sequence[APIRouter],
    request_fields: Mapping[str, str] | None = None,
    health: bool = True,
    description: str = "",
    customize: Callable[[FastAPI], None] | None = None,
    body_guard: bool = True,
) -> FastAPI:
    """`body_guard=False`: the service limits request bodies itself (the registry, in its own error format
    and without a second pass over every body on its hot path)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = open_resources()
        resources: Resources = await opened if inspect.isawaitable(opened) else opened  # type: ignore[assignment]
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = FastAPI(title=title, description=description, lifespan=lifespan)
    install_error_handlers(app, request_fields or {})
    install_openapi(app, body_guard=body_guard)
    if health:
        app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    if customize is not None:
        customize(app)
    if body_guard:
        app.add_middleware(BodyGuard)
    app.add_middleware(InstanceHeader, instance=instance_name(title))
    return app
