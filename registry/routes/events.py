"""Ours: the schema of one event version (what `eventbus.schemas.SchemaClient` asks for), and envelope validation.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry import parsing
from registry.openapi import CatalogOut, EnvelopeRefusedOut, ValidOut, body, responses
from registry.routes.common import RegistryJSON, service_of

router = APIRouter(tags=["events"], default_response_class=RegistryJSON)


@router.get("/catalog/{event_name}/{event_version}", response_model=CatalogOut, responses=responses(404, 422, 503))
async def catalog_entry(event_name: str, event_version: str, request: Request) -> Response:
    """The live schema event `event_name` version `event_version` resolves to."""
    found = await service_of(request).event_schema(parsing.subject(event_name, "event_name"),
                                                   parsing.event_version(event_version))
    return RegistryJSON({**found.body(), "event_version": found.event_version})


@router.post("/validate", response_model=ValidOut, openapi_extra=body("Envelope"),
             responses=responses(404, 413, 422, 503, **{"422": EnvelopeRefusedOut}))
async def validate(request: Request) -> Response:
    """An envelope in; 200 {"valid": true, "schema_id"}, or 422: 42210 when it is not an envelope, 42212 with
    every error and its JSON pointer when it breaks its schema; 404 (40410, 40411) when its event or version is
    unknown. (Served by `registry.hot.HotReads`; this route documents it and answers identically.)"""
    envelope, name, version = parsing.envelope(await request.body())
    return RegistryJSON(await service_of(request).validate(envelope, name, version))
