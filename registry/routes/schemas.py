"""Schemas by id (ids are never reused, even after a permanent delete), and the schema types."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry import parsing
from registry.http import CONTENT_TYPE
from registry.openapi import ANY_JSON, SchemaOut, SubjectVersionRef, responses
from registry.routes.common import RegistryJSON, service_of

router = APIRouter(tags=["schemas"], default_response_class=RegistryJSON)


@router.get("/schemas/ids/{schema_id}", response_model=SchemaOut, responses=responses(404, 422, 503))
async def schema_by_id(schema_id: str, request: Request) -> Response:
    """(Served by `registry.hot.HotReads` once cached; this route answers identically.)"""
    return Response(await service_of(request).schema_body(parsing.schema_id(schema_id)), media_type=CONTENT_TYPE)


@router.get("/schemas/ids/{schema_id}/schema", response_model=Any,
            responses={**ANY_JSON, **responses(404, 422, 503)})
async def raw_schema_by_id(schema_id: str, request: Request) -> Response:
    return Response(await service_of(request).schema_text(parsing.schema_id(schema_id)), media_type=CONTENT_TYPE)


@router.get("/schemas/ids/{schema_id}/versions", response_model=list[SubjectVersionRef],
            responses=responses(404, 422, 503))
async def schema_versions(schema_id: str, request: Request) -> Response:
    pairs = await service_of(request).schema_users(parsing.schema_id(schema_id))
    return RegistryJSON([{"subject": s, "version": v} for s, v in pairs])


@router.get("/schemas/ids/{schema_id}/subjects", response_model=list[str], responses=responses(404, 422, 503))
async def schema_subjects(schema_id: str, request: Request) -> Response:
    pairs = await service_of(request).schema_users(parsing.schema_id(schema_id))
    return RegistryJSON(sorted({s for s, _ in pairs}))


@router.get("/schemas/types", response_model=list[str])
async def schema_types() -> Response:
    return RegistryJSON(["JSON"])
