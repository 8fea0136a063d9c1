"""Would this schema be accepted? The verdict, and with `verbose=true` every reason with its location."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry import parsing
from registry.openapi import CompatibilityOut, body, responses
from registry.routes.common import RegistryJSON, service_of

router = APIRouter(tags=["compatibility"], default_response_class=RegistryJSON)


async def _compat(request: Request, subject: str, version: int | None, verbose: bool) -> Response:
    schema = parsing.schema_request(await request.body())
    result = await service_of(request).check(subject, schema, version)
    answer: dict[str, Any] = {"is_compatible": result.compatible}
    if verbose:
        full = result.as_dict()
        answer |= {"messages": full["messages"], "reasons": full["reasons"], "mode": full["mode"],
                   "policy": full["policy"], "checked_versions": full["checked_versions"]}
    return RegistryJSON(answer)


@router.post("/compatibility/subjects/{subject}/versions/{version}", response_model=CompatibilityOut,
             responses=responses(404, 413, 422, 503), openapi_extra=body("SchemaIn"))
async def compatibility(subject: str, version: str, request: Request, verbose: bool = False) -> Response:
    """Against one version (`latest`): the subject's mode, without `_TRANSITIVE`."""
    return await _compat(request, parsing.subject(subject), parsing.version(version), verbose)


@router.post("/compatibility/subjects/{subject}/versions", response_model=CompatibilityOut,
             responses=responses(404, 413, 422, 503), openapi_extra=body("SchemaIn"))
async def compatibility_all(subject: str, request: Request, verbose: bool = False) -> Response:
    """Against the subject's history, as its mode says (what registering would check)."""
    return await _compat(request, parsing.subject(subject), None, verbose)
