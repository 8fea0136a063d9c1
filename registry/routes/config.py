"""Compatibility mode and policy: global, and per subject."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry import parsing
from registry.compat import Mode, Policy
from registry.openapi import WRITE, ConfigOut, ConfigSetOut, body, responses
from registry.routes.common import WRITE as AUTH
from registry.routes.common import RegistryJSON, service_of

router = APIRouter(tags=["config"], default_response_class=RegistryJSON)


def _config(mode: Mode, policy: Policy) -> Response:
    return RegistryJSON({"compatibilityLevel": mode.value, "policy": policy.value})


async def _put(request: Request, subject: str | None) -> Response:
    mode, policy = parsing.config_request(await request.body())
    mode, policy = await service_of(request).set_config(subject, mode, policy)
    return RegistryJSON({"compatibility": mode.value, "policy": policy.value})


@router.get("/config", response_model=ConfigOut, responses=responses(503))
async def get_global_config(request: Request) -> Response:
    return _config(*await service_of(request).config(None))


@router.put("/config", dependencies=AUTH, response_model=ConfigSetOut, responses=responses(401, 403, 413, 422, 503),
            openapi_extra={**body("ConfigIn"), **WRITE})
async def put_global_config(request: Request) -> Response:
    return await _put(request, None)


@router.get("/config/{subject}", response_model=ConfigOut, responses=responses(404, 422, 503))
async def get_subject_config(subject: str, request: Request, defaultToGlobal: bool = False) -> Response:
    found = await service_of(request).subject_config(parsing.subject(subject), default_to_global=defaultToGlobal)
    return _config(*found)


@router.put("/config/{subject}", dependencies=AUTH, response_model=ConfigSetOut,
            responses=responses(401, 403, 413, 422, 503), openapi_extra={**body("ConfigIn"), **WRITE})
async def put_subject_config(subject: str, request: Request) -> Response:
    return await _put(request, parsing.subject(subject))


@router.delete("/config/{subject}", dependencies=AUTH, response_model=ConfigOut,
               responses=responses(401, 403, 404, 422, 503), openapi_extra=WRITE)
async def delete_subject_config(subject: str, request: Request) -> Response:
    """Drop the subject's own config (it follows the global one again); answers what it was."""
    return _config(*await service_of(request).delete_config(parsing.subject(subject)))
