"""Hand-made hostile input against the registry: every class answers 4xx in the registry's error format,
naming the parameter or field and the problem; nothing is written; a kept-alive connection stays usable."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from registry.app import create_app
from registry.settings import RegistrySettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS

pytestmark = pytest.mark.integration
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BIG = 2**31  # one past the store's 4-byte integers
HUGE = "1" * 5000  # past Python's int() digit limit


@pytest.fixture
async def registry(make_database: Callable[[str], str],
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    url = make_database("registry")
    monkeypatch.setenv("REGISTRY_DATABASE_URL", url)
    settings = RegistrySettings(database_url=url, registry_token=TOKEN, schemas_dir=SCHEMAS)
    app = create_app(settings)
    async with api(app) as client:
        yield app, client


@pytest.fixture
def client(registry: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return registry[1]


def schema_body(schema: Any) -> dict[str, Any]:
    return {"schema": json.dumps(schema), "schemaType": "JSON"}


def refused(response: httpx.Response, status: int, code: int, *words: str) -> None:
    assert response.headers["content-type"] == "application/vnd.schemaregistry.v1+json", response.text
    body = response.json()
    assert (response.status_code, body["error_code"]) == (status, code), body
    for word in words:
        assert word in body["message"], (word, body["message"])


def subject_routes(subject: str) -> list[tuple[str, str, Any]]:
    """Every route that takes a subject (or event name) in its path, with a body it would accept."""
    ok = schema_body({"type": "string"})
    return [("GET", f"/subjects/{subject}/versions", None), ("GET", f"/subjects/{subject}/versions/1", None),
            ("GET", f"/subjects/{subject}/versions/latest/schema", None),
            ("POST", f"/subjects/{subject}/versions", ok), ("POST", f"/subjects/{subject}", ok),
            ("DELETE", f"/subjects/{subject}", None), ("DELETE", f"/subjects/{subject}/versions/1", None),
            ("POST", f"/compatibility/subjects/{subject}/versions/latest", ok),
            ("POST", f"/compatibility/subjects/{subject}/versions", ok),
            ("GET", f"/config/{subject}", None), ("PUT", f"/config/{subject}", {"compatibility": "NONE"}),
            ("DELETE", f"/config/{subject}", None), ("GET", f"/catalog/{subject}/0", None)]


async def snapshot(client: httpx.AsyncClient) -> Any:
    subjects = (await client.get("/subjects?deleted=true")).json()
    versions = {s: (await client.get(f"/subjects/{s}/versions?deleted=true")).json() for s in subjects}
    return subjects, versions, (await client.get("/config")).json()


# -- text that PostgreSQL cannot hold -------------------------------------------------------------------------
async def test_nul_and_over_long_subjects_in_every_path_are_42208(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    for subject, problem in (("Task%00Created", "U+0000"), ("x" * 256, "longer than 255")):
        for method, path, body in subject_routes(subject):
            response = await client.request(method, path, json=body, headers=AUTH)
            param = "event_name" if path.startswith("/catalog") else "subject"
            refused(response, 422, 42208, f"The {param}", problem)
    assert await snapshot(client) == before


async def test_a_lone_surrogate_in_a_path_is_42208(registry: tuple[FastAPI, httpx.AsyncClient]) -> None:
    """uvicorn decodes paths with replacement characters; an ASGI server that does not gets this answer."""
    app, _ = registry
    for method, path, body in subject_routes("bad\ud800name"):
        status, answer = await raw_asgi(app, method, path, json.dumps(body).encode() if body else b"")
        assert (status, answer["error_code"]) == (422, 42208) and "lone surrogate" in answer["message"], path


async def raw_asgi(app: FastAPI, method: str, path: str, body: bytes) -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode("utf-8", "surrogatepass"), "root_path": "", "query_string": b"",
             "headers": [(b"authorization", AUTH["Authorization"].encode()), (b"host", b"test")],
             "client": ("127.0.0.1", 1), "server": ("test", 80)}
    await app(scope, receive, send)
    return sent[0]["status"], json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


async def test_nul_and_surrogates_in_json_bodies(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    envelope = {"meta": {"event_name": "Task\x00Created", "event_version": 0}, "payload": {}}
    refused(await client.post("/validate", json=envelope), 422, 42210, "meta.event_name", "U+0000")
    long_name = {"meta": {"event_name": "x" * 300, "event_version": 0}}
    refused(await client.post("/validate", json=long_name), 422, 42210, "meta.event_name", "longer than 255")
    surrogate = b'{"meta": {"event_name": "Task\\ud800", "event_version": 0}}'
    refused(await client.post("/validate", content=surrogate), 422, 42210, "not JSON", "surrogate")
    surrogate_schema = {"schema": '{"type": "string", "title": "\\udc00"}'}
    for path in ("/subjects/s/versions", "/subjects/TaskRating", "/compatibility/subjects/TaskRating/versions"):
        refused(await client.post(path, json=surrogate_schema, headers=AUTH), 422, 42201, "schema", "surrogate")
    assert await snapshot(client) == before
    # NUL inside a schema's strings is data: stored escaped, read back as written
    with_nul = {"type": "string", "title": "a\x00b", "enum": ["\x00"]}
    registered = await client.post("/subjects/nul-inside/versions", json=schema_body(with_nul), headers=AUTH)
    assert registered.status_code == 200
    stored = await client.get(f"/schemas/ids/{registered.json()['id']}")
    assert json.loads(stored.json()["schema"]) == with_nul


# -- integers the store cannot hold, or Python cannot read ----------------------------------------------------
async def test_versions_ids_and_event_versions_out_of_range(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    for bad in (str(BIG), str(2**63), HUGE, "0", "-2", "1.0", "١"):
        for method, path in (("GET", f"/subjects/TaskRating/versions/{bad}"),
                             ("GET", f"/subjects/TaskRating/versions/{bad}/schema"),
                             ("DELETE", f"/subjects/TaskRating/versions/{bad}"),
                             ("POST", f"/compatibility/subjects/TaskRating/versions/{bad}")):
            response = await client.request(method, path, json=schema_body({"type": "string"}), headers=AUTH)
            refused(response, 422, 42202, "version", "[1, 2^31-1]")
        for suffix in ("", "/schema", "/versions", "/subjects"):
            refused(await client.get(f"/schemas/ids/{bad}{suffix}"), 422, 42200, "schema id", "2147483647")
    for bad in (str(BIG), HUGE, "-1"):
        refused(await client.get(f"/catalog/TaskRating/{bad}"), 422, 42202, "event_version", "2147483647")
    assert await snapshot(client) == before


async def test_event_versions_out_of_range_in_validate(client: httpx.AsyncClient) -> None:
    for bad in (BIG, 2**63, -1):
        envelope = {"meta": {"event_name": "TaskRating", "event_version": bad}, "payload": {}}
        refused(await client.post("/validate", json=envelope), 422, 42210, "meta.event_version", "out of range")
    beyond_64_bits = b'{"meta": {"event_name": "TaskRating", "event_version": 18446744073709551616}}'
    refused(await client.post("/validate", content=beyond_64_bits), 422, 42210, "meta.event_version")
    digits = b'{"meta": {"event_name": "TaskRating", "event_version": ' + HUGE.encode() + b"}}"
    refused(await client.post("/validate", content=digits), 422, 42210, "not JSON", "number")


async def test_schemas_pinning_an_event_version_the_store_cannot_hold(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    for pin, words in ((BIG, ("pins 2147483648", "between 0 and")), (-1, ("pins -1",)),
                       (True, ("pins true", "integer"))):
        schema = {"type": "object", "properties": {"meta": {"type": "object", "properties": {
            "event_name": {"enum": ["TaskRating"]}, "event_version": {"enum": [pin]}}}}}
        for path in ("/subjects/TaskRating/versions", "/subjects/TaskRating",
                     "/compatibility/subjects/TaskRating/versions"):
            response = await client.post(path, json=schema_body(schema), headers=AUTH)
            refused(response, 422, 42201, "/properties/meta/properties/event_version", *words)
    huge_bound = '{"type": "string", "maxLength": ' + HUGE + "}"
    refused(await client.post("/subjects/s/versions", json={"schema": huge_bound}, headers=AUTH), 422, 42201,
            "not JSON", "number")
    assert await snapshot(client) == before


# -- nesting ---------------------------------------------------------------------------------------------------
def deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


async def test_json_bodies_nested_too_deeply(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    for depth in (100, 5000):
        extra = deep_array(depth)
        schema = json.dumps(json.dumps({"type": "string"}))
        raw = f'{{"schema": {schema}, "extra": {extra}}}'.encode()
        for path, code in (("/subjects/s/versions", 42201), ("/subjects/TaskRating", 42201),
                           ("/compatibility/subjects/TaskRating/versions/latest", 42201), ("/config", 42200),
                           ("/config/TaskRating", 42200)):
            method = "PUT" if path.startswith("/config") else "POST"
            response = await client.request(method, path, content=raw, headers=AUTH)
            refused(response, 422, code, "request body", "nests deeper than 64 levels")
        envelope = f'{{"meta": {{"event_name": "TaskRating", "event_version": 0}}, "payload": {{"a": {extra}}}}}'
        refused(await client.post("/validate", content=envelope.encode()), 422, 42210, "nests deeper than 64")
    assert await snapshot(client) == before


async def test_schemas_nested_hundreds_of_levels(client: httpx.AsyncClient) -> None:
    before = await snapshot(client)
    for kind in ("properties", "anyOf", "items"):
        schema: Any = {"type": "string"}
        for _ in range(300):
            schema = ({"type": "object", "properties": {"a": schema}} if kind == "properties" else
                      {"anyOf": [schema, {"type": "null"}]} if kind == "anyOf" else {"items": schema})
        for path in ("/subjects/s/versions", "/subjects/TaskRating", "/compatibility/subjects/TaskRating/versions",
                     "/compatibility/subjects/TaskRating/versions/latest"):
            response = await client.post(path, json=schema_body(schema), headers=AUTH)
            refused(response, 422, 42201, "Invalid schema", "nests deeper than 64 levels (at /")
    assert await snapshot(client) == before
    within = {"type": "string"}
    for _ in range(30):  # 61 levels of JSON: taken, checked and compiled
        within = {"type": "object", "properties": {"a": within}}
    assert (await client.post("/subjects/deep/versions", json=schema_body(within), headers=AUTH)).status_code == 200


async def test_schemas_the_clients_cannot_compile_are_42201(client: httpx.AsyncClient) -> None:
    for schema, words in (({"$ref": "#/$defs/missing"}, ("cannot compile", "/$defs/missing")),
                          ({"$ref": "https://example.com/other.json"}, ("not a local reference",)),
                          ({"type": "string", "pattern": "\\Z"}, ("cannot compile",)),
                          ({"$schema": "https://example.com/meta", "type": "string"}, ("meta-schema",))):
        refused(await client.post("/subjects/s/versions", json=schema_body(schema), headers=AUTH), 422, 42201, *words)
    for body, words in (({"schema": "{}", "schemaType": [[1]]}, ("schemaType", "array")),
                        ({"schema": "{}", "references": "x"}, ("references", "array")),
                        ({"schema": "{}", "references": [{"name": "a"}]}, ("references are not supported",))):
        refused(await client.post("/subjects/s/versions", json=body, headers=AUTH), 422, 42201, *words)
    for body, words in (({"compatibility": [[[]]]}, ("compatibility", "array")),
                        ({"policy": "SIDEWAYS"}, ("policy", "LENIENT")), ({"compatibility": 10**30}, ("number",))):
        refused(await client.put("/config", json=body, headers=AUTH), 422, 42203, *words)
    assert "s" not in (await client.get("/subjects")).json()


async def test_query_parameters_are_named(client: httpx.AsyncClient) -> None:
    for path in ("/subjects?deleted=maybe", "/subjects/TaskRating/versions?deleted=%00",
                 "/config/TaskRating?defaultToGlobal=" + HUGE):
        response = await client.get(path)
        refused(response, 422, 42200, "query parameter")
    refused(await client.delete("/subjects/TaskRating?permanent=2", headers=AUTH), 422, 42200, "'permanent'")


# -- the connection survives ----------------------------------------------------------------------------------
BAD_REQUESTS = [
    ("GET", "/subjects/Task%00Created/versions", b""),
    ("GET", f"/subjects/TaskRating/versions/{BIG}", b""),
    ("GET", f"/schemas/ids/{HUGE}", b""),
    ("GET", f"/schemas/ids/{BIG}", b""),
    ("GET", f"/catalog/TaskRating/{BIG}", b""),
    ("POST", "/validate", b'{"meta": {"event_name": "TaskRating", "event_version": 2147483648}}'),
    ("POST", "/validate", b'{"meta": {"event_name": "Task\\u0000", "event_version": 0}}'),
    ("POST", "/validate", deep_array(3000).encode()),
    ("POST", "/subjects/s/versions", json.dumps({"schema": deep_array(500)}).encode()),
    ("POST", "/compatibility/subjects/TaskRating/versions", json.dumps({"schema": deep_array(300)}).encode()),
    ("PUT", "/config", b'{"compatibility": ' + deep_array(900).encode() + b"}"),
]


def test_a_kept_alive_connection_outlives_every_bad_request(registry_url: str) -> None:
    """Against `python -m registry` (uvicorn): a 500 would close the connection; these answer 4xx on one."""
    from tests.integration.conftest import REGISTRY_TOKEN

    parts = urlsplit(registry_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for method, path, body in [*BAD_REQUESTS, ("GET", "/subjects", b"")]:
            head = (f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n"
                    f"Authorization: Bearer {REGISTRY_TOKEN}\r\nContent-Type: application/json\r\n\r\n")
            sock.sendall(head.encode() + body)
            status, headers, answer = _read_response(reader)
            expected = 200 if path == "/subjects" else 422
            assert status == expected, (method, path[:60], status, answer[:200])
            assert headers.get("connection") != "close"
            assert "error_code" in json.loads(answer) or expected == 200


def _read_response(reader: Any) -> tuple[int, dict[str, str], bytes]:
    status_line = reader.readline()
    assert status_line, "the server closed the connection"
    status = int(status_line.split()[1])
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, reader.read(int(headers["content-length"]))


async def test_bodies_past_a_megabyte_are_413(client: httpx.AsyncClient) -> None:
    big = b'{"schema": "' + b" " * 1_000_001 + b'"}'
    for method, path in (("POST", "/subjects/s/versions"), ("POST", "/validate"), ("PUT", "/config"),
                         ("POST", "/compatibility/subjects/TaskRating/versions")):
        refused(await client.request(method, path, content=big, headers=AUTH), 413, 41301, "1000000 bytes")
