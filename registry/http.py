"""The registry's HTTP edge: its content type, its error format (`{"error_code", "message"}`) and the one
mapping from an error code to an HTTP status (the code's first three digits), for every answer: refusals,
request validation, unknown routes and methods (405 with every method the path has), the database being down.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import Scope, Send

from eventbus.failures import DB_UNAVAILABLE, database_unavailable
from registry import errors
from registry.errors import RegistryError

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: seconds a client should wait before retrying when the database is down
RETRY_AFTER = 2


def status_of(code: int) -> int:
    """The HTTP status of an error code: Confluent's codes are the status, or the status and two digits."""
    return int(str(code)[:3])


class RegistryResponse(Response):
    media_type = CONTENT_TYPE


def dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def answer(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type=CONTENT_TYPE)


def refusal(exc: RegistryError, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(exc.body()), status_code=status_of(exc.code), media_type=CONTENT_TYPE, headers=headers)


def edge_error(exc: BaseException) -> Response | None:
    """The answer to an exception raised while serving a request, when it is one the registry answers."""
    if isinstance(exc, RegistryError):
        return refusal(exc)
    if isinstance(exc, DB_UNAVAILABLE) and database_unavailable(exc):
        log.warning("database unavailable (%s: %s): answering 503", type(exc).__name__, str(exc)[:200])
        return refusal(RegistryError(errors.STORE_UNAVAILABLE, "The registry's database is unavailable; nothing was "
                                     f"written. Retry after {RETRY_AFTER} s"), {"Retry-After": str(RETRY_AFTER)})
    return None


async def send_body(send: Send, status: int, body: bytes) -> None:
    """A complete answer straight onto ASGI (the hot paths)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", CONTENT_TYPE.encode())]})
    await send({"type": "http.response.body", "body": body})


def _parameter_problem(issue: dict[str, Any]) -> str:
    where, *path = issue.get("loc", ("request",))
    name = ".".join(str(p) for p in path) or "body"
    return f"{where} parameter {name!r}: {issue.get('msg', 'invalid')}"


def install_error_handlers(app: FastAPI) -> None:
    """Replace the skeleton's default handlers (`eventbus.webapi`) with the registry's format."""

    async def registry_error(_request: Request, exc: Exception) -> Response:
        response = edge_error(exc)
        if response is None:
            raise exc
        return response

    async def bad_request(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        message = "; ".join(_parameter_problem(issue) for issue in exc.errors()) or "invalid request"
        return refusal(RegistryError(errors.INVALID_REQUEST, message[:1000]))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return refusal(RegistryError(exc.status_code, f"HTTP {exc.status_code} {exc.detail}"), headers)

    app.add_exception_handler(RegistryError, registry_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(HTTPException, http_error)
    for exc_class in DB_UNAVAILABLE:
        if issubclass(exc_class, Exception):
            app.add_exception_handler(exc_class, registry_error)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of the request's path takes (Starlette's 405 names only the first route that
    matched the path)."""
    allowed = []
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed
