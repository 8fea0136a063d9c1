"""What the registry's OpenAPI document says: every answer's body and status, request bodies (parsed at the edge
by `registry.parsing`, so declared here rather than as FastAPI body parameters), the parameters' ranges, and
the bearer token writes need. Answers are `application/vnd.schemaregistry.v1+json`, as sent."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from registry.compat import Mode, Policy
from registry.http import CONTENT_TYPE
from registry.parsing import MAX_INT, MAX_NAME


# -- answers ------------------------------------------------------------------------------------------------
class ErrorOut(BaseModel):
    """A refusal: the error code (its first three digits are the HTTP status) and what went wrong, where."""

    model_config = ConfigDict(extra="allow")
    error_code: int
    message: str


class ReasonOut(BaseModel):
    against_version: int
    direction: Literal["backward", "forward", "identity"]
    rule: str
    location: str = Field(description="JSON pointer into the schemas")
    message: str


class IncompatibleOut(ErrorOut):
    """409: the schema is incompatible with the subject's history; every reason with its location."""

    reasons: list[ReasonOut]


class IssueOut(BaseModel):
    pointer: str = Field(description="JSON pointer into the envelope")
    message: str
    keyword: str


class EnvelopeRefusedOut(ErrorOut):
    """422 from /validate: 42210 not an envelope, or 42212 the envelope breaks its schema (then with `valid`,
    `schema_id` and every error)."""

    valid: bool = False
    schema_id: int = 0
    errors: list[IssueOut] = []


class SubjectVersionOut(BaseModel):
    subject: str
    version: int
    id: int
    schemaType: Literal["JSON"]
    schema_text: str = Field(alias="schema", description="the schema, as JSON text")


class CatalogOut(SubjectVersionOut):
    event_version: int


class SchemaOut(BaseModel):
    schema_text: str = Field(alias="schema", description="the schema, as JSON text")
    schemaType: Literal["JSON"]
    references: list[Any]


class SubjectVersionRef(BaseModel):
    subject: str
    version: int


class RegisteredOut(BaseModel):
    id: int
    version: int


class CompatibilityOut(BaseModel):
    """`is_compatible`; with `verbose=true` also the reasons, the mode and policy, and the versions checked."""

    is_compatible: bool
    messages: list[str] = []
    reasons: list[ReasonOut] = []
    mode: Mode = Mode.NONE
    policy: Policy = Policy.LENIENT
    checked_versions: list[int] = []


class ConfigOut(BaseModel):
    compatibilityLevel: Mode
    policy: Policy


class ConfigSetOut(BaseModel):
    compatibility: Mode
    policy: Policy


class ValidOut(BaseModel):
    valid: Literal[True]
    schema_id: int
    subject: str
    version: int


_ERRORS: dict[int, tuple[str, type[BaseModel]]] = {
    401: ("no bearer token (40101)", ErrorOut),
    403: ("not this registry's token (40301)", ErrorOut),
    404: ("what the path names does not exist (the code says what)", ErrorOut),
    409: ("incompatible with the subject's history", IncompatibleOut),
    413: ("the request body is larger than 1,000,000 bytes (41301)", ErrorOut),
    422: ("a parameter or the body is invalid (the message names it)", ErrorOut),
    503: ("the database does not answer; nothing was written; see Retry-After (50301)", ErrorOut),
}


def responses(*codes: int, **override: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route; `override={"422": Model}` documents a route's own body."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        description, model = _ERRORS[code]
        out[code] = {"description": description, "model": override.get(str(code), model)}
        if code == 503:
            out[code]["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}
    return out


ANY_JSON: dict[int | str, dict[str, Any]] = {200: {"description": "the schema itself",
                                                   "content": {CONTENT_TYPE: {"schema": {}}}}}

# -- requests -----------------------------------------------------------------------------------------------
NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": "^[^\\u0000]*$"}
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "subject": {**NAME, "pattern": "^[^\\u0000/]*$"},
    "event_name": {**NAME, "pattern": "^[^\\u0000/]*$"},
    "version": {"oneOf": [{"type": "integer", "minimum": 1, "maximum": MAX_INT}, {"enum": ["latest", -1]}]},
    "schema_id": {"type": "integer", "minimum": 1, "maximum": MAX_INT},
    "event_version": {"type": "integer", "minimum": 0, "maximum": MAX_INT},
}
BODIES: dict[str, dict[str, Any]] = {
    "SchemaIn": {
        "type": "object", "required": ["schema"],
        "description": "A JSON Schema 2020-12, as JSON text (Confluent's body); nesting at most 64 levels",
        "properties": {"schema": {"type": "string", "format": "json-schema"}, "schemaType": {"enum": ["JSON"]},
                       "references": {"type": ["array", "null"], "maxItems": 0}}},
    "ConfigIn": {
        "type": "object", "description": "What to change; the rest stays",
        "properties": {"compatibility": {"enum": [m.value for m in Mode]},
                       "policy": {"enum": [p.value for p in Policy]}}},
    "Envelope": {
        "type": "object", "required": ["meta"], "description": "An event envelope (seed 004)",
        "properties": {"meta": {"type": "object", "required": ["event_name", "event_version"], "properties": {
            "event_name": NAME, "event_version": {"type": "integer", "minimum": 0, "maximum": MAX_INT}}},
            "payload": {"type": "object"}}},
}


def body(name: str) -> dict[str, Any]:
    """`openapi_extra` of a route whose body is `BODIES[name]`."""
    schema = {"schema": {"$ref": f"#/components/schemas/{name}"}}
    return {"requestBody": {"required": True, "content": {CONTENT_TYPE: schema, "application/json": schema}}}


WRITE: dict[str, Any] = {"security": [{"bearer": []}]}


def install_openapi(app: FastAPI) -> None:
    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = doc.setdefault("components", {})
            components.setdefault("schemas", {}).update(BODIES)
            components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer",
                                                        "description": "the registry's REGISTRY_TOKEN"}}
            for operations in doc["paths"].values():
                for operation in operations.values():
                    for parameter in operation.get("parameters", []):
                        if parameter["in"] == "path" and parameter["name"] in PATH_PARAMETERS:
                            parameter["schema"] = PATH_PARAMETERS[parameter["name"]]
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]
