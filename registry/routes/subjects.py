"""Subjects and their versions: list, read, register, look up, delete (soft, then permanent)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry import parsing
from registry.http import CONTENT_TYPE
from registry.openapi import ANY_JSON, WRITE, RegisteredOut, SubjectVersionOut, body, responses
from registry.routes.common import WRITE as AUTH
from registry.routes.common import RegistryJSON, service_of

router = APIRouter(tags=["subjects"], default_response_class=RegistryJSON)


@router.get("/subjects", response_model=list[str], responses=responses(422, 503))
async def subjects(request: Request, deleted: bool = False) -> Response:
    """Every subject with a live version (`deleted=true`: soft-deleted ones too)."""
    return RegistryJSON(await service_of(request).subjects(include_deleted=deleted))


@router.get("/subjects/{subject}/versions", response_model=list[int], responses=responses(404, 422, 503))
async def versions(subject: str, request: Request, deleted: bool = False) -> Response:
    found = await service_of(request).versions(parsing.subject(subject), include_deleted=deleted)
    return RegistryJSON(found)


@router.get("/subjects/{subject}/versions/{version}", response_model=SubjectVersionOut,
            responses=responses(404, 422, 503))
async def get_version(subject: str, version: str, request: Request, deleted: bool = False) -> Response:
    found = await service_of(request).version(parsing.subject(subject), parsing.version(version),
                                              include_deleted=deleted)
    return RegistryJSON(found.body())


@router.get("/subjects/{subject}/versions/{version}/schema", response_model=Any,
            responses={**ANY_JSON, **responses(404, 422, 503)})
async def get_version_schema(subject: str, version: str, request: Request) -> Response:
    found = await service_of(request).version(parsing.subject(subject), parsing.version(version))
    return Response(found.schema, media_type=CONTENT_TYPE)


@router.post("/subjects/{subject}/versions", dependencies=AUTH, response_model=RegisteredOut,
             responses=responses(401, 403, 409, 413, 422, 503),
             openapi_extra={**body("SchemaIn"), **WRITE})
async def register(subject: str, request: Request) -> Response:
    """Register a schema; identical content returns the existing id; incompatible is 409 with reasons."""
    name = parsing.subject(subject)
    result = await service_of(request).register(name, parsing.schema_request(await request.body()))
    return RegistryJSON({"id": result.schema_id, "version": result.version})


@router.post("/subjects/{subject}", response_model=SubjectVersionOut,
             responses=responses(404, 413, 422, 503),
             openapi_extra=body("SchemaIn"))
async def lookup(subject: str, request: Request, deleted: bool = False) -> Response:
    """Is this schema registered under the subject? Its version and id if so."""
    name = parsing.subject(subject)
    found = await service_of(request).lookup(name, parsing.schema_request(await request.body()),
                                             include_deleted=deleted)
    return RegistryJSON(found.body())


@router.delete("/subjects/{subject}", dependencies=AUTH, response_model=list[int],
               responses=responses(401, 403, 404, 422, 503), openapi_extra=WRITE)
async def delete_subject(subject: str, request: Request, permanent: bool = False) -> Response:
    """Soft-delete every live version; `permanent=true` then removes them for good (ids stay burnt)."""
    return RegistryJSON(await service_of(request).delete_subject(parsing.subject(subject), permanent=permanent))


@router.delete("/subjects/{subject}/versions/{version}", dependencies=AUTH, response_model=int,
               responses=responses(401, 403, 404, 422, 503), openapi_extra=WRITE)
async def delete_version(subject: str, version: str, request: Request, permanent: bool = False) -> Response:
    deleted = await service_of(request).delete_version(parsing.subject(subject), parsing.version(version),
                                                       permanent=permanent)
    return RegistryJSON(deleted)
