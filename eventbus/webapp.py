"""One app skeleton for every HTTP service: resources opened in the lifespan, errors mapped, health routes.

A service keeps only its routes and its domain wiring:

    app = service_app("management", open_resources=lambda: ManagementResources(settings),
                      routers=[routes.router], request_fields=routes.REQUEST_FIELDS)

Routes reach the resources with `resources_of(request)`.
"""

from __future__ import annotations

import inspect
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventbus.health import Probe
from eventbus.webapi import health_router, install_error_handlers


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
) -> FastAPI:
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
    if health:
        app.include_router(health_router())
    for router in routers:
        app.include_router(router)
    if customize is not None:
        customize(app)
    app.add_middleware(InstanceHeader, instance=instance_name(title))
    return app
