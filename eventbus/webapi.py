"""What every service's HTTP API shares: error mapping and the health endpoints.

Errors say what and where: 404 names the missing entity and the field it came from, 409 the
conflicting state, 422 every schema issue with its location.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from eventbus.health import Probe, run_probes
from eventbus.outbox import EventRejected


class NotFoundError(LookupError):
    def __init__(self, entity: str, entity_id: object, field: str | None = None) -> None:
        super().__init__(f"{entity} {entity_id} not found")
        self.entity, self.entity_id, self.field = entity, entity_id, field


class ConflictError(Exception):
    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context


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


def install_error_handlers(app: FastAPI, request_fields: Mapping[str, str]) -> None:
    async def not_found(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, NotFoundError)
        body: dict[str, Any] = {"detail": str(exc), "entity": exc.entity, "id": str(exc.entity_id)}
        if exc.field:
            body["loc"] = ["body", exc.field]
        return JSONResponse(body, status_code=404)

    async def conflict(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConflictError)
        return JSONResponse({"detail": str(exc), **exc.context}, status_code=409)

    async def rejected(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, EventRejected)
        return JSONResponse(rejected_body(exc, request_fields), status_code=422)

    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ConflictError, conflict)
    app.add_exception_handler(EventRejected, rejected)


def health_router() -> APIRouter:
    """Probes come from `app.state.resources.probes()`, opened in the app's lifespan."""
    router = APIRouter()

    @router.get("/health", tags=["ops"])
    async def health(request: Request) -> JSONResponse:
        """200 only when the database and the broker answer."""
        probes: Mapping[str, Probe] = request.app.state.resources.probes()
        ok, checks = await run_probes(probes)
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                            status_code=200 if ok else 503)

    @router.get("/livez", tags=["ops"])
    async def livez() -> dict[str, str]:
        """The process is up (for load balancers: the API keeps taking writes while the broker is down)."""
        return {"status": "ok"}

    return router

