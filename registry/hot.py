"""The hot read path: pure ASGI ahead of FastAPI's routing for the two calls made at event rates.

`GET /schemas/ids/{id}` when the answer is cached, and `POST /validate`. FastAPI's route matching and dependency
solving cost more than the work itself (`make bench-registry`); these answers are byte-for-byte what the routes
give (`registry.routes`), and everything else (a cache miss included) goes to FastAPI unchanged.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry import parsing
from registry.http import dumps, edge_error, send_body
from registry.service import RegistryService

IDS = "/schemas/ids/"
_ID_DIGITS = len(str(parsing.MAX_INT))


class HotReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            resources = getattr(scope["app"].state, "resources", None)
            method, path = scope["method"], scope["path"]
            if resources is not None and method == "GET" and path.startswith(IDS):
                digits = path[len(IDS):]
                if len(digits) <= _ID_DIGITS and digits.isascii() and digits.isdigit():
                    body = resources.service.cached_body(int(digits))
                    if body is not None:
                        await send_body(send, 200, body)
                        return
            elif resources is not None and method == "POST" and path == "/validate":
                await self.validate(resources.service, scope, receive, send)
                return
        await self.app(scope, receive, send)

    @staticmethod
    async def validate(service: RegistryService, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        if raw is None:
            return  # the client went away
        try:
            envelope, name, version = parsing.envelope(raw)
            answer = await service.validate(envelope, name, version)
        except Exception as exc:
            response = edge_error(exc)
            if response is None:
                raise
            await response(scope, receive, send)
            return
        await send_body(send, 200, dumps(answer))


async def read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
