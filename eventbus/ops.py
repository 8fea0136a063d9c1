"""The small HTTP side door of non-API processes (relays): /health and /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

HealthFn = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def ops_app(health: HealthFn, registry: CollectorRegistry) -> web.Application:
    async def health_view(_request: web.Request) -> web.Response:
        ok, body = await health()
        return web.json_response(body, status=200 if ok else 503)

    async def metrics_view(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/health", health_view)
    app.router.add_get("/metrics", metrics_view)
    return app


async def start_ops_server(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
