"""The hot read path: pure ASGI ahead of FastAPI's routing for the two calls made at event rates.

`GET /schemas/ids/{id}` when the answer is cached, and `POST /validate`. FastAPI's route matching and dependency
solving cost more than the work itself (`make bench-registry`); these answers are byte-for-byte what the routes
give (`registry.routes`), and everything else (a cache miss included) goes to FastAPI unchanged, with its body
read once here (the size limit; the registry does not take `eventbus.webapp.BodyGuard`'s second pass).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventbus.webapp import replay_body
from registry import errors, parsing
from registry.errors import RegistryError
from registry.http import dumps, edge_error, refusal, send_body
from registry.service import RegistryService

IDS = "/schemas/ids/"
_ID_DIGITS = len(str(parsing.MAX_INT))
#: request bodies larger than this are refused (413) before anything reads them whole
MAX_BODY = 1_000_000
_TOO_LARGE = RegistryError(errors.REQUEST_TOO_LARGE, f"The request body is larger than {MAX_BODY} bytes")


class HotReads:
    """Also the registry's body guard: a body is read once, at most `MAX_BODY` bytes, and handed on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        hot = not scope.get("root_path")
        if method == "GET":
            if hot and path.startswith(IDS):
                digits = path[len(IDS):]
                resources = getattr(scope["app"].state, "resources", None)
                if resources is not None and len(digits) <= _ID_DIGITS and digits.isascii() and digits.isdigit():
                    body = resources.service.cached_body(int(digits))
                    if body is not None:
                        await send_body(send, 200, body)
                        return
            await self.app(scope, receive, send)
            return
        if method not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        raw = await read_body(receive)
        if raw is None:
            return  # the client went away
        if len(raw) > MAX_BODY:
            await refusal(_TOO_LARGE)(scope, receive, send)
            return
        if hot and path == "/validate" and method == "POST":
            resources = getattr(scope["app"].state, "resources", None)
            if resources is not None:
                await validate(resources.service, raw, scope, receive, send)
                return
        await self.app(scope, replay_body(raw, receive), send)


async def validate(service: RegistryService, raw: bytes, scope: Scope, receive: Receive, send: Send) -> None:
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
    """The whole body; past `MAX_BODY` bytes, what was read so far (a refusal follows); None on disconnect."""
    chunks, size = [], 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY or not message.get("more_body", False):
            return b"".join(chunks)


