"""The registry against its own OpenAPI document and against generated input, in-process (ASGI, real database).

- the document is valid OpenAPI (openapi-spec-validator) and says what the registry answers;
- a property-based test sends arbitrary text, integers and JSON to every parameter and body: never a 5xx,
  always the registry's error format with a status that is the code's first three digits;
- schemathesis generates requests from the document (valid and invalid ones) and checks every answer
  against it: no 5xx, documented status, content type, headers and body schema, auth enforced.

Budgets are small for the normal run; REGISTRY_FUZZ_EXAMPLES raises them (and unpins the seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate as validate_spec
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.testclient import TestClient

from registry.app import create_app
from registry.http import CONTENT_TYPE
from registry.settings import RegistrySettings
from tests.integration.conftest import SCHEMAS

pytestmark = pytest.mark.integration
TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("REGISTRY_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 120, deadline=None, derandomize=not EXAMPLES, database=None,
                suppress_health_check=list(HealthCheck))


def make_app(make_database: Callable[[str], str]) -> Iterator[FastAPI]:
    with pytest.MonkeyPatch.context() as env:
        url = make_database("registry")
        env.setenv("REGISTRY_DATABASE_URL", url)
        yield create_app(RegistrySettings(database_url=url, registry_token=TOKEN, schemas_dir=SCHEMAS))


@pytest.fixture(scope="module")
def app(make_database: Callable[[str], str]) -> Iterator[FastAPI]:
    yield from make_app(make_database)


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


# -- the document ---------------------------------------------------------------------------------------------
def test_the_openapi_document_is_valid_and_complete(app: FastAPI) -> None:
    doc = app.openapi()
    validate_spec(doc)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            if path in ("/health", "/livez", "/metrics"):
                continue  # the skeleton's (eventbus.webapi), answered in application/json or Prometheus text
            for status, response in operation["responses"].items():
                assert list(response.get("content", {})) == [CONTENT_TYPE], (where, status)
                assert "schema" in response["content"][CONTENT_TYPE], (where, status)
            if method in ("post", "put"):
                assert set(operation["requestBody"]["content"]) == {CONTENT_TYPE, "application/json"}, where
            if method != "get" and path != "/validate" and not path.startswith(("/compatibility", "/subjects/{s")):
                assert operation.get("security") == [{"bearer": []}], where
            if any(p["in"] == "path" for p in operation.get("parameters", [])) or method != "get":
                assert "422" in operation["responses"], where


def test_405_answers_list_every_method_of_the_path(app: FastAPI, client: TestClient) -> None:
    doc = app.openapi()
    examples = {"{subject}": "TaskRating", "{version}": "1", "{schema_id}": "1", "{event_name}": "TaskRating",
                "{event_version}": "0"}
    for template, operations in doc["paths"].items():
        path = template
        for name, value in examples.items():
            path = path.replace(name, value)
        documented = {m.upper() for m in operations}
        for method in {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} - documented:
            response = client.request(method, path, headers=AUTH)
            assert response.status_code == 405, (method, path, response.text)
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed - {"HEAD"} == documented, (method, path, allowed)
            assert response.json() == {"error_code": 405, "message": "HTTP 405 Method Not Allowed"}
            assert response.headers["content-type"] == CONTENT_TYPE


# -- property-based: arbitrary input everywhere -----------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
names = st.text(max_size=300) | st.sampled_from(["TaskRating", "TaskCreated", "ManagerCreated"])
numbers = (st.integers(min_value=-(2**70), max_value=2**70).map(str) | st.text(max_size=12)
           | st.sampled_from(["latest", "-1", "1", "2147483647", "2147483648", "1" * 5000]))
bodies = (json_values.map(lambda v: json.dumps(v).encode())
          | st.fixed_dictionaries({"schema": json_values.map(json.dumps) | st.text(max_size=30)},
                                  optional={"schemaType": json_values, "references": json_values})
          .map(lambda v: json.dumps(v).encode())
          | st.fixed_dictionaries({"meta": st.fixed_dictionaries(
              {"event_name": names | json_values, "event_version": st.integers() | json_values}),
              "payload": json_values}).map(lambda v: json.dumps(v).encode())
          | st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n)
          | st.binary(max_size=40))
ROUTES = [("GET", "/subjects/{s}/versions"), ("GET", "/subjects/{s}/versions/{n}"),
          ("GET", "/subjects/{s}/versions/{n}/schema"), ("POST", "/subjects/{s}/versions"), ("POST", "/subjects/{s}"),
          ("DELETE", "/subjects/{s}"), ("DELETE", "/subjects/{s}/versions/{n}"), ("GET", "/schemas/ids/{n}"),
          ("GET", "/schemas/ids/{n}/schema"), ("GET", "/schemas/ids/{n}/versions"),
          ("GET", "/schemas/ids/{n}/subjects"), ("POST", "/compatibility/subjects/{s}/versions/{n}"),
          ("POST", "/compatibility/subjects/{s}/versions"), ("GET", "/config/{s}"), ("PUT", "/config/{s}"),
          ("PUT", "/config"), ("DELETE", "/config/{s}"), ("GET", "/catalog/{s}/{n}"), ("POST", "/validate")]


@FUZZ
@given(route=st.sampled_from(ROUTES), name=names, number=numbers, body=bodies,
       query=st.sampled_from(["", "?deleted=true", "?permanent=true", "?verbose=true", "?deleted=x"]))
def test_no_input_makes_a_server_error(client: TestClient, route: tuple[str, str], name: str, number: str,
                                       body: bytes, query: str) -> None:
    method, template = route
    path = template.replace("{s}", quote(name, safe="")).replace("{n}", quote(number, safe="")) + query
    response = client.request(method, path, content=body if method in ("POST", "PUT") else None, headers=AUTH)
    assert response.status_code < 500, (method, path[:200], response.text[:500])
    assert response.headers["content-type"] == CONTENT_TYPE
    if (response.status_code >= 400 and response.status_code != 404) or "error_code" in response.text[:20]:
        answer: Any = response.json()
        assert isinstance(answer["message"], str) and answer["message"]
        assert int(str(answer["error_code"])[:3]) == response.status_code, answer


# -- schemathesis: requests from the document, answers checked against it --------------------------------------
@pytest.fixture(scope="module")
def fuzzed_app(make_database: Callable[[str], str]) -> Iterator[FastAPI]:
    for app in make_app(make_database):
        yield app
        schemathesis_asgi.shutdown_lifespans()  # its portal ran the app's lifespan: close the pool


#: what the document's `"format": "json-schema"` (a schema as JSON text) is, for schemathesis to generate
json_schema_texts = st.recursive(
    st.sampled_from(["string", "integer", "number", "boolean", "null"]).map(lambda t: {"type": t})
    | st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(0, 100)),
    lambda children: st.builds(lambda props: {"type": "object", "properties": props},
                               st.dictionaries(st.text(max_size=5), children, max_size=3))
    | st.lists(children, min_size=1, max_size=3).map(lambda parts: {"anyOf": parts}),
    max_leaves=6).map(json.dumps)


def test_schemathesis_finds_nothing(fuzzed_app: FastAPI) -> None:
    schemathesis.openapi.format("json-schema", json_schema_texts)
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    strategy = (schema.as_strategy(generation_mode=GenerationMode.POSITIVE)
                | schema.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @FUZZ
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        # /validate's 422 depends on the registered schemas (and meta.event_version 7.0, an "integer" to JSON
        # Schema, is not one to the backbone): what the document allows there may rightly be refused
        excluded = [positive_data_acceptance] if case.operation.path == "/validate" else []
        case.call_and_validate(headers=AUTH, excluded_checks=excluded)

    run()
