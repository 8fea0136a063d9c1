"""Management's, hiring's and bonus's OpenAPI documents: valid (openapi-spec-validator), and they say what the
services answer: every status code each route can return with its body schema, Retry-After on every 503, 413
and 422 on every route that takes a body (the app skeleton's body guard), request bodies in application/json,
/metrics in text/plain. The 422 schema is checked against what the error mapping actually writes.

No database: the documents are built without opening the apps' resources.
"""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field, ValidationError

from eventbus.errors import InvalidInput
from eventbus.outbox import EventRejected
from eventbus.schemas.validation import SchemaIssue
from eventbus.webapi import rejected_body, validation_body
from eventbus.webapp import MAX_BODY_BYTES, MAX_BODY_DEPTH, BodyGuard
from services.bonus.api import create_app as bonus_app
from services.bonus.settings import BonusSettings
from services.hiring.api import create_app as hiring_app
from services.hiring.settings import HiringSettings
from services.management.api import REQUEST_FIELDS
from services.management.api import create_app as management_app
from services.management.settings import ManagementSettings
from services.validation import Text

pytestmark = pytest.mark.integration
NOWHERE = "postgresql+asyncpg://nobody@127.0.0.1:9/nothing"
JSON = "application/json"

#: every operation and the statuses it answers (the routes' own, plus the skeleton's 413 and 422)
EXPECTED: dict[str, dict[str, set[str]]] = {
    "management": {
        "POST /managers": {"201", "413", "422", "503"},
        "GET /managers/{manager_id}": {"200", "404", "422", "503"},
        "POST /tasks": {"201", "404", "413", "422", "503"},
        "GET /tasks/{task_id}": {"200", "404", "422", "503"},
    },
    "hiring": {
        "POST /tasks/{task_id}/complete": {"200", "404", "409", "413", "422", "503"},
        "POST /tasks/{task_id}/fail": {"200", "404", "409", "413", "422", "503"},
        "GET /tasks/{task_id}": {"200", "404", "422", "503"},
        "GET /tasks/{task_id}/rating": {"200", "404", "422", "503"},
        "POST /task-ratings/lookup": {"200", "413", "422", "503"},
    },
    "bonus": {
        "GET /managers/{manager_id}/balance": {"200", "404", "422", "503"},
        "GET /managers/{manager_id}/ledger": {"200", "404", "422", "503"},
        "POST /credits": {"200", "409", "410", "413", "422", "503"},
        "GET /tasks/{task_id}": {"200", "404", "422", "503"},
    },
}
OPS = {"GET /health": {"200", "503"}, "GET /livez": {"200"}, "GET /metrics": {"200"}}


def apps() -> dict[str, FastAPI]:
    return {"management": management_app(ManagementSettings(database_url=NOWHERE)),
            "hiring": hiring_app(HiringSettings(database_url=NOWHERE)),
            "bonus": bonus_app(BonusSettings(database_url=NOWHERE))}


@pytest.fixture(scope="module", params=list(EXPECTED))
def document(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, apps()[request.param].openapi()


def operations(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": operation for path, methods in doc["paths"].items()
            for method, operation in methods.items()}


def conforms(doc: dict[str, Any], answer: dict[str, Any], body: Any) -> None:
    """`body` fits the answer's documented schema (its `$ref`s resolved in the document's components)."""
    schema = {**answer["content"][JSON]["schema"], "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(body)


def test_the_documents_are_valid_openapi(document: tuple[str, dict[str, Any]]) -> None:
    from openapi_spec_validator import validate

    _, doc = document
    validate(doc)
    assert "HTTPValidationError" not in json.dumps(doc)  # FastAPI's 422 shape is not what the services write


def test_every_operation_lists_every_status_it_answers(document: tuple[str, dict[str, Any]]) -> None:
    service, doc = document
    found = {label: set(operation["responses"]) for label, operation in operations(doc).items()}
    assert found == {**EXPECTED[service], **OPS}


def test_every_answer_has_a_body_schema_and_the_right_content_type(document: tuple[str, dict[str, Any]]) -> None:
    _, doc = document
    for label, operation in operations(doc).items():
        for status, answer in operation["responses"].items():
            media = "text/plain" if label == "GET /metrics" else JSON
            assert list(answer.get("content", {})) == [media], (label, status)
            assert answer["content"][media].get("schema"), (label, status)
            assert answer.get("description"), (label, status)
            if status == "503" and label != "GET /health":  # /health's 503 is its own verdict, not a refusal
                assert answer["headers"]["Retry-After"]["required"] is True, label
                assert answer["content"][JSON]["schema"] == {"$ref": "#/components/schemas/UnavailableOut"}, label
            if status == "422":
                assert answer["content"][JSON]["schema"] == {"$ref": "#/components/schemas/ValidationOut"}, label
            if status == "404":
                assert answer["content"][JSON]["schema"] == {"$ref": "#/components/schemas/NotFoundOut"}, label
        if "requestBody" in operation:
            body = operation["requestBody"]
            assert body["required"] is True and list(body["content"]) == [JSON], label
            assert {"413", "422"} <= set(operation["responses"]), label
        if any(p["in"] == "path" for p in operation.get("parameters", [])):
            assert {"404", "422"} <= set(operation["responses"]), label


def test_path_ids_are_uuids_and_limits_are_bounded(document: tuple[str, dict[str, Any]]) -> None:
    _, doc = document
    for label, operation in operations(doc).items():
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] == "path":
                assert (schema["type"], schema["format"]) == ("string", "uuid"), (label, parameter["name"])
            elif schema.get("type") == "integer":
                assert "minimum" in schema and "maximum" in schema, (label, parameter["name"])


def test_text_fields_say_what_a_column_cannot_hold(document: tuple[str, dict[str, Any]]) -> None:
    service, doc = document
    for name, schema in doc["components"]["schemas"].items():
        if not name.startswith(("Create", "Finish", "Credit")) or name.endswith("Out"):
            continue
        for field, prop in schema["properties"].items():
            strings = [s for s in prop.get("anyOf", [prop]) if s.get("type") == "string"]
            for string in strings:
                if "format" in string or "enum" in string or "const" in string:
                    continue
                assert string["pattern"] == "^[^\\u0000]*$", (service, name, field)
                assert "maxLength" in string, (service, name, field)
            for integer in [s for s in prop.get("anyOf", [prop]) if s.get("type") == "integer"]:
                assert "minimum" in integer and "maximum" in integer, (service, name, field)


def test_health_metrics_and_livez(document: tuple[str, dict[str, Any]]) -> None:
    _, doc = document
    ops = operations(doc)
    health = ops["GET /health"]["responses"]
    for status in ("200", "503"):
        conforms(doc, health[status], {"status": "ok" if status == "200" else "unavailable",
                                       "checks": {"database": "ok", "broker": "error: KafkaConnectionError: x"},
                                       "instance": "i", "flags_version": 3, "links": {}})
    conforms(doc, ops["GET /livez"]["responses"]["200"], {"status": "ok"})
    assert ops["GET /metrics"]["responses"]["200"]["content"]["text/plain"]["schema"] == {"type": "string"}


# -- the error bodies the mapping writes fit the documented schemas ----------------------------------------------
class Probe(BaseModel):
    name: Text = Field(max_length=3)
    rating: int = Field(ge=1, le=5)
    kind: int | None = None


def validation_errors() -> list[Any]:
    """Request-validation errors with inputs of every kind the caller can send."""
    out = []
    for payload in ({"name": "a\x00", "rating": 2**70}, {"name": "ab\ud800", "rating": math.inf},
                    {"name": "abcd", "rating": math.nan, "kind": {"x": [1]}}, {"name": 3, "rating": "x" * 10_000},
                    {"rating": [1, 2], "kind": True}, "not an object"):
        try:
            Probe.model_validate(payload)
        except ValidationError as exc:
            out.append(exc.errors())
    return out


def test_the_422_schema_fits_every_422_the_services_write(document: tuple[str, dict[str, Any]]) -> None:
    _, doc = document
    answer = operations(doc)[next(iter(EXPECTED[document[0]]))]["responses"]["422"]
    for errors in validation_errors():
        body = validation_body([{**e, "loc": ("body", *e["loc"])} for e in errors])
        json.dumps(body, allow_nan=False)  # what JSONResponse does: it must encode
        conforms(doc, answer, body)
    conforms(doc, answer, validation_body([{"type": "json_invalid", "loc": ("body", 17), "msg": "JSON decode error",
                                            "input": {}, "ctx": {"error": "Expecting value"}}]))
    rejected = EventRejected("TaskCreated", 0, [SchemaIssue("/payload/title", "does not match", "pattern"),
                                                SchemaIssue("/meta/x", "bad", "type")])
    conforms(doc, answer, rejected_body(rejected, REQUEST_FIELDS))
    domain = InvalidInput("username", "is not a username", "value_error.username")
    conforms(doc, answer, {"detail": [{"loc": ["body", domain.field], "msg": domain.message, "type": domain.kind}]})
    conforms(doc, answer, {"detail": [{"loc": ["body"], "msg": f"JSON nested deeper than {MAX_BODY_DEPTH} levels",
                                       "type": "value_error.json_depth"}]})
    assert BodyGuard.__init__.__defaults__ == (MAX_BODY_BYTES, MAX_BODY_DEPTH)  # the sizes the documents name
