"""The HTTP edge every service shares: domain errors mapped to status codes once, and the health routes.

Errors say what and where: 404 names the missing entity and the field it came from, 409 the
conflicting state, 422 every schema issue with its location, 503 which dependency is down and when
to retry (the write was not made).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Mapping
from typing import Any, Literal

import sqlalchemy.exc
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from eventbus.errors import ConflictError, DependencyUnavailable, InvalidInput, NotFoundError
from eventbus.failures import DB_UNAVAILABLE, database_unavailable
from eventbus.health import Probe, run_probes
from eventbus.outbox import EventRejected

log = logging.getLogger(__name__)

#: seconds a client should wait before retrying when the database is down
DATABASE_RETRY_AFTER = 2


class ErrorOut(BaseModel):
    """The body of a refusal that is not about the request's shape (404, 409, 410, 413, 503)."""

    detail: str = Field(description="what went wrong, in words")
    model_config = {"extra": "allow"}


class NotFoundOut(ErrorOut):
    """404: the entity the request names does not exist."""

    entity: str = Field(description="what kind of thing was not found (manager, task)")
    id: str = Field(description="the id that was asked for")
    loc: list[str] | None = Field(default=None, description='where the id came from when it was a body field, '
                                  'e.g. ["body", "creator_id"]')


class ConflictOut(ErrorOut):
    """409: the request contradicts the current state; the other fields say which (task_id, status, outcome)."""


class UnavailableOut(ErrorOut):
    """503: a dependency is down or switched off; nothing was written; retry after `Retry-After` seconds."""

    dependency: str = Field(description="database, or the service or path that cannot answer now")


class ValidationIssueOut(BaseModel):
    loc: list[str | int] = Field(description='where: ["body", field, ...], ["path", name], ["query", name], or '
                                 '["event", pointer] for a part of the event that no request field maps to')
    msg: str
    type: str
    input: str | int | float | bool | None = Field(
        default=None, description="the offending input (request validation only), shortened; not JSON scalars "
                                  "are shown as their type name")


class ValidationOut(BaseModel):
    """The body of a 422 answer: every problem with its location in the request."""

    detail: list[ValidationIssueOut]
    event: str | None = Field(default=None, description='"<event> v<version>" when the event the request would '
                              "produce breaks its schema")


#: seconds a client should wait before retrying, on every 503
RETRY_AFTER_HEADER = {"Retry-After": {"description": "seconds to wait before retrying", "required": True,
                                      "schema": {"type": "string", "pattern": "^[0-9]+$"}}}

_DESCRIBED: dict[int, tuple[str, type[BaseModel]]] = {
    404: ("not found: names the entity and the request field", NotFoundOut),
    409: ("conflicts with the current state", ConflictOut),
    410: ("switched off for good", ErrorOut),
    413: ("the request body is larger than the service reads", ErrorOut),
    422: ("invalid request (shape, text a column cannot hold, JSON nested too deeply, a domain rule), or the event "
          "it would produce breaks its schema", ValidationOut),
    503: ("a dependency is down; nothing was written; see Retry-After", UnavailableOut),
}


#: status code -> documented answer, for `responses=` on routes (OpenAPI lists what a route can answer)
def responses(*codes: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`descriptions={"410": "..."}` says why this route answers a code, instead of the generic words."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description, model = _DESCRIBED[code]
        out[code] = {"description": descriptions.get(str(code), description), "model": model}
        if code == 503:
            out[code]["headers"] = RETRY_AFTER_HEADER
    return out


def rejected_body(exc: EventRejected, request_fields: Mapping[str, str]) -> dict[str, Any]:
    """422 body in FastAPI's shape; a payload pointer maps back to the request field it came from."""
    detail = []
    for issue in exc.issues:
        parts = issue.pointer.split("/")[1:]
        if len(parts) >= 2 and parts[0] == "payload" and parts[1] in request_fields:
            loc: list[str] = ["body", request_fields[parts[1]], *parts[2:]]
        else:
            loc = ["event", issue.pointer or "/"]
        detail.append({"loc": loc, "msg": issue.message, "type": f"schema.{issue.keyword}"})
    return {"detail": detail, "event": f"{exc.event_name} v{exc.event_version}"}


class _OutageLog:
    """Say once that the database is down (not once per request), and once that it answers again."""

    def __init__(self, every: float = 30.0) -> None:
        self.every = every
        self._last = 0.0

    def down(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last > self.every:
            log.warning("database unavailable (%s: %s); answering 503 until it is back",
                        type(exc).__name__, str(exc)[:200])
        self._last = now


def _safe(value: Any, limit: int = 120) -> Any:
    """An echo of the caller's input that always encodes: short, and without lone surrogates."""
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= limit else text[:limit] + f"... ({len(value)} characters)"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # 1e999 in a body: inf, which JSON cannot carry
    if isinstance(value, bool | int) or value is None:
        return value if not isinstance(value, int) or abs(value) < 10**18 else f"{str(value)[:20]}... (an integer)"
    return f"({type(value).__name__})"


def validation_body(errors: Any) -> dict[str, Any]:
    """FastAPI's 422 shape (loc, msg, type), with the offending input echoed safely."""
    return {"detail": [{"loc": [_safe(part) for part in e.get("loc", ())], "msg": _safe(str(e.get("msg", "")), 500),
                        "type": str(e.get("type", "")), **({"input": _safe(e["input"])} if "input" in e else {})}
                       for e in errors]}


def install_error_handlers(app: FastAPI, request_fields: Mapping[str, str]) -> None:
    outage = _OutageLog()

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(validation_body(exc.errors()), status_code=422)

    async def unreadable_body(request: Request, exc: Exception) -> Response:
        """FastAPI answers 400 to a body `json.loads` raises on with something other than a JSON syntax error:
        bytes that are not UTF-8, or an integer with more digits than Python converts. They are invalid JSON
        bodies like any other: 422 in the same shape. Every other HTTP error is answered as FastAPI does."""
        assert isinstance(exc, StarletteHTTPException)
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, ValueError):
            if isinstance(cause, UnicodeDecodeError):
                what = "is not UTF-8"
            elif "digits" in str(cause):
                what = f"holds a number of more than {sys.get_int_max_str_digits()} digits"
            else:
                what = f"is not JSON this service reads: {_safe(str(cause), 200)}"
            return JSONResponse({"detail": [{"loc": ["body"], "msg": f"the request body {what}",
                                             "type": "json_invalid"}]}, status_code=422)
        return await http_exception_handler(request, exc)

    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NotFoundError)
        body: dict[str, Any] = {"detail": str(exc), "entity": exc.entity, "id": str(exc.entity_id)}
        if exc.field:
            body["loc"] = ["body", exc.field]
        return JSONResponse(body, status_code=404)

    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConflictError)
        return JSONResponse({"detail": str(exc), **exc.context}, status_code=409)

    async def invalid(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, InvalidInput)
        return JSONResponse({"detail": [{"loc": ["body", exc.field], "msg": exc.message, "type": exc.kind}]},
                            status_code=422)

    async def rejected(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EventRejected)
        return JSONResponse(rejected_body(exc, request_fields), status_code=422)

    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DependencyUnavailable)
        return JSONResponse({"detail": str(exc), "dependency": exc.dependency},
                            status_code=503, headers={"Retry-After": str(max(1, round(exc.retry_after)))})

    async def database_down(_request: Request, exc: Exception) -> JSONResponse:
        if not database_unavailable(exc):
            raise exc
        outage.down(exc)
        return JSONResponse({"detail": "the database is unavailable; nothing was written", "dependency": "database"},
                            status_code=503, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})

    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, unreadable_body)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(InvalidInput, invalid)
    app.add_exception_handler(EventRejected, rejected)
    app.add_exception_handler(DependencyUnavailable, unavailable)
    for exc_class in (*DB_UNAVAILABLE, sqlalchemy.exc.DBAPIError, sqlalchemy.exc.TimeoutError):
        app.add_exception_handler(exc_class, database_down)


class HealthOut(BaseModel):
    """200 when every probe answered, 503 (same body) when one did not; services add their instance, flags
    version and links' breakers."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(description='probe name (database, broker) -> "ok" or "error: ..."')
    model_config = {"extra": "allow"}


class LivezOut(BaseModel):
    status: Literal["ok"]


#: /metrics is Prometheus's text format (CONTENT_TYPE_LATEST names its version)
METRICS_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "Prometheus text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}


def health_router() -> APIRouter:
    """Probes come from `app.state.resources.probes()`, opened in the app's lifespan."""
    router = APIRouter()

    @router.get("/health", tags=["ops"], response_model=None, responses={
        200: {"description": "the database and the broker answer", "model": HealthOut},
        503: {"description": "a dependency does not answer (see `checks`)", "model": HealthOut}})
    async def health(request: Request) -> JSONResponse:
        """200 only when the database and the broker answer."""
        resources = request.app.state.resources
        probes: Mapping[str, Probe] = resources.probes()
        ok, checks = await run_probes(probes)
        body: dict[str, Any] = {"status": "ok" if ok else "unavailable", "checks": checks}
        details = getattr(resources, "details", None)
        if details is not None:
            body |= details()
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/metrics", tags=["ops"], response_class=Response, responses=METRICS_RESPONSE)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process (breakers, link calls and fallbacks)."""
        registry = getattr(request.app.state.resources, "metrics", None)
        body = generate_latest(registry) if registry is not None else b""
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @router.get("/livez", tags=["ops"], response_model=None, responses={200: {"description": "up", "model": LivezOut}})
    async def livez() -> dict[str, str]:
        """The process is up (for load balancers: the API keeps taking writes while the broker is down)."""
        return {"status": "ok"}

    return router
