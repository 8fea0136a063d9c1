"""The registry's HTTP API on a real database: Confluent semantics, reasons, auth, ids never reused."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from registry.app import create_app
from registry.settings import RegistrySettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS

pytestmark = pytest.mark.integration
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch,
                 bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    url = make_database("registry")
    monkeypatch.setenv("REGISTRY_DATABASE_URL", url)
    settings = RegistrySettings(database_url=url, registry_token=TOKEN, schemas_dir=SCHEMAS)
    async with api(create_app(settings)) as c:
        yield c


def body(schema: Any) -> dict[str, Any]:
    return {"schema": json.dumps(schema), "schemaType": "JSON"}


def obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required or []}


S = {"type": "string"}


async def test_catalog_is_seeded_in_event_version_order(client: httpx.AsyncClient) -> None:
    subjects = (await client.get("/subjects")).json()
    assert subjects == ["ManagerCreated", "TaskCompleted", "TaskCreated", "TaskFailed", "TaskRating"]
    assert (await client.get("/subjects/ManagerCreated/versions")).json() == [1, 2, 3]
    latest = (await client.get("/subjects/ManagerCreated/versions/latest")).json()
    assert latest["version"] == 3 and json.loads(latest["schema"])["title"] == "ManagerCreated"
    entry = (await client.get("/catalog/ManagerCreated/1")).json()
    assert entry["event_version"] == 1 and entry["version"] == 2
    schema = (await client.get(f"/schemas/ids/{entry['id']}")).json()
    assert schema["schemaType"] == "JSON" and json.loads(schema["schema"]) == json.loads(entry["schema"])


async def test_register_returns_existing_id_for_identical_content(client: httpx.AsyncClient) -> None:
    first = await client.post("/subjects/things/versions", json=body(obj({"a": S})), headers=AUTH)
    again = await client.post("/subjects/things/versions", json=body(obj({"a": S})), headers=AUTH)
    elsewhere = await client.post("/subjects/others/versions", json=body(obj({"a": S})), headers=AUTH)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json() == {"id": first.json()["id"], "version": 1}
    assert elsewhere.json()["id"] == first.json()["id"]  # content-hash dedupe across subjects
    found = await client.post("/subjects/things", json=body(obj({"a": S})))
    assert found.json()["version"] == 1
    missing = await client.post("/subjects/things", json=body(obj({"b": S})))
    assert missing.status_code == 404 and missing.json()["error_code"] == 40403


async def test_incompatible_registration_is_409_with_located_reasons(client: httpx.AsyncClient) -> None:
    await client.post("/subjects/t/versions", json=body(obj({"a": S})), headers=AUTH)
    r = await client.post("/subjects/t/versions", json=body(obj({"a": S, "b": S}, ["b"])), headers=AUTH)
    assert r.status_code == 409
    assert r.json()["error_code"] == 409
    [reason] = r.json()["reasons"]
    assert (reason["rule"], reason["location"], reason["against_version"]) == ("required-added", "/required", 1)
    assert "incompatible with an earlier schema" in r.json()["message"]
    assert (await client.get("/subjects/t/versions")).json() == [1]


async def test_compatibility_endpoint_verbose_lists_reasons(client: httpx.AsyncClient) -> None:
    await client.post("/subjects/c/versions", json=body({"type": "string", "maxLength": 9}), headers=AUTH)
    quiet = await client.post("/compatibility/subjects/c/versions/latest",
                              json=body({"type": "string", "maxLength": 3}))
    verbose = await client.post("/compatibility/subjects/c/versions/1?verbose=true",
                                json=body({"type": "string", "maxLength": 3}))
    ok = await client.post("/compatibility/subjects/c/versions/latest", json=body({"type": "string"}))
    assert quiet.json() == {"is_compatible": False}
    assert verbose.json()["is_compatible"] is False
    assert verbose.json()["messages"] == ["backward against version 1: /maxLength: maxLength tightened from 9 to 3 "
                                          "[max-length-tightened]"]
    assert ok.json() == {"is_compatible": True}
    unknown = await client.post("/compatibility/subjects/nope/versions/latest", json=body(S))
    assert unknown.status_code == 404 and unknown.json()["error_code"] == 40401
    bad_version = await client.post("/compatibility/subjects/c/versions/7", json=body(S))
    assert bad_version.json()["error_code"] == 40402


async def test_concurrent_registrations_are_checked_against_each_other(client: httpx.AsyncClient) -> None:
    """Two schemas each compatible with v1 but not with each other, registered at once: exactly one wins."""
    wider_int, wider_bool = {"type": ["string", "integer"]}, {"type": ["string", "boolean"]}
    for attempt in range(4):
        subject = f"race-{attempt}"
        await client.put(f"/config/{subject}", json={"compatibility": "BACKWARD"}, headers=AUTH)
        await client.post(f"/subjects/{subject}/versions", json=body({"type": "string"}), headers=AUTH)
        answers = await asyncio.gather(*(client.post(f"/subjects/{subject}/versions", json=body(schema),
                                                     headers=AUTH) for schema in (wider_int, wider_bool)))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.json() for a in answers]
        assert (await client.get(f"/subjects/{subject}/versions")).json() == [1, 2]


async def test_event_identity_is_checked_against_the_subject(client: httpx.AsyncClient) -> None:
    v1 = json.loads((SCHEMAS / "TaskCompleted" / "v0.json").read_text())
    renamed = json.loads(json.dumps(v1).replace('"TaskCompleted"', '"Other"'))
    r = await client.post("/subjects/TaskCompleted/versions", json=body(renamed), headers=AUTH)
    assert r.status_code == 409 and r.json()["reasons"][0]["rule"] == "event-name-mismatch"
    changed_same_version = {**v1, "description": "x", "properties": {**v1["properties"]}}
    changed_same_version["properties"]["payload"] = {**v1["properties"]["payload"], "minProperties": 0}
    r = await client.post("/subjects/TaskCompleted/versions", json=body(changed_same_version), headers=AUTH)
    assert r.status_code == 409 and r.json()["reasons"][0]["rule"] == "event-version-taken"


async def test_an_identical_schema_is_compatible_with_itself(client: httpx.AsyncClient) -> None:
    for subject in ("TaskCompleted", "ManagerCreated"):  # one version; three (checked transitively)
        latest = (await client.get(f"/subjects/{subject}/versions/latest")).json()
        same = {"schema": latest["schema"], "schemaType": "JSON"}
        for path in (f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
                     f"/compatibility/subjects/{subject}/versions/{latest['version']}?verbose=true",
                     f"/compatibility/subjects/{subject}/versions?verbose=true"):
            r = await client.post(path, json=same)
            assert (r.status_code, r.json()["is_compatible"], r.json()["reasons"]) == (200, True, []), path
    latest = (await client.get("/subjects/ManagerCreated/versions/latest")).json()
    changed = json.loads(latest["schema"]) | {"description": "changed, same event_version"}
    r = await client.post("/compatibility/subjects/ManagerCreated/versions/latest?verbose=true", json=body(changed))
    assert r.json()["is_compatible"] is False
    assert [x["rule"] for x in r.json()["reasons"]] == ["event-version-taken"]


async def test_config_global_and_per_subject(client: httpx.AsyncClient) -> None:
    assert (await client.get("/config")).json() == {"compatibilityLevel": "BACKWARD_TRANSITIVE", "policy": "LENIENT"}
    missing = await client.get("/config/TaskCreated")
    assert missing.status_code == 404 and missing.json()["error_code"] == 40408
    assert (await client.get("/config/TaskCreated?defaultToGlobal=true")).json()["compatibilityLevel"] == \
        "BACKWARD_TRANSITIVE"
    put = await client.put("/config/TaskCreated", json={"compatibility": "full", "policy": "STRICT"}, headers=AUTH)
    assert put.json() == {"compatibility": "FULL", "policy": "STRICT"}
    assert (await client.get("/config/TaskCreated")).json() == {"compatibilityLevel": "FULL", "policy": "STRICT"}
    bad = await client.put("/config", json={"compatibility": "SIDEWAYS"}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error_code"] == 42203
    assert (await client.delete("/config/TaskCreated", headers=AUTH)).status_code == 200
    assert (await client.get("/config/TaskCreated")).status_code == 404


async def test_strict_subject_refuses_what_lenient_accepts(client: httpx.AsyncClient) -> None:
    await client.put("/config/s", json={"compatibility": "BACKWARD", "policy": "STRICT"}, headers=AUTH)
    await client.post("/subjects/s/versions", json=body(obj({"a": S}, ["a"])), headers=AUTH)
    strict = await client.post("/subjects/s/versions", json=body(obj({"a": S, "b": S}, ["a"])), headers=AUTH)
    assert strict.status_code == 409
    assert strict.json()["reasons"][0]["rule"] == "property-undeclared-by-open-writer"
    await client.put("/config/s", json={"policy": "LENIENT"}, headers=AUTH)
    lenient = await client.post("/subjects/s/versions", json=body(obj({"a": S, "b": S}, ["a"])), headers=AUTH)
    assert lenient.status_code == 200


async def test_soft_then_permanent_delete_and_ids_are_never_reused(client: httpx.AsyncClient) -> None:
    schema = obj({"z": S})
    first_id = (await client.post("/subjects/d/versions", json=body(schema), headers=AUTH)).json()["id"]
    too_soon = await client.delete("/subjects/d/versions/1?permanent=true", headers=AUTH)
    assert too_soon.status_code == 404 and too_soon.json()["error_code"] == 40407
    assert (await client.delete("/subjects/d/versions/1", headers=AUTH)).json() == 1
    twice = await client.delete("/subjects/d/versions/1", headers=AUTH)
    assert twice.json()["error_code"] == 40406
    assert (await client.get("/subjects/d/versions/1")).json()["error_code"] == 40402
    assert (await client.get("/subjects/d/versions/1?deleted=true")).json()["id"] == first_id
    assert "d" not in (await client.get("/subjects")).json()
    assert "d" in (await client.get("/subjects?deleted=true")).json()
    assert (await client.delete("/subjects/d/versions/1?permanent=true", headers=AUTH)).json() == 1
    assert (await client.get(f"/schemas/ids/{first_id}")).json()["error_code"] == 40403
    again = (await client.post("/subjects/d/versions", json=body(schema), headers=AUTH)).json()
    assert again["id"] > first_id  # the same content gets a new id: the old one is never handed out again


async def test_delete_subject_soft_then_permanent(client: httpx.AsyncClient) -> None:
    await client.post("/subjects/e/versions", json=body(obj({"a": S})), headers=AUTH)
    await client.post("/subjects/e/versions", json=body(obj({"a": S, "b": S})), headers=AUTH)
    not_soft = await client.delete("/subjects/e?permanent=true", headers=AUTH)
    assert not_soft.json()["error_code"] == 40405
    assert (await client.delete("/subjects/e", headers=AUTH)).json() == [1, 2]
    assert (await client.delete("/subjects/e", headers=AUTH)).json()["error_code"] == 40404
    assert (await client.delete("/subjects/e?permanent=true", headers=AUTH)).json() == [1, 2]
    assert (await client.get("/subjects/e/versions?deleted=true")).json()["error_code"] == 40401


async def test_writes_need_the_token_reads_do_not(client: httpx.AsyncClient) -> None:
    none = await client.post("/subjects/x/versions", json=body(S))
    wrong = await client.post("/subjects/x/versions", json=body(S), headers={"Authorization": "Bearer nope"})
    assert none.status_code == 401 and "Authorization: Bearer" in none.json()["message"]
    assert wrong.status_code == 403 and "REGISTRY_TOKEN" in wrong.json()["message"]
    for method, path in (("PUT", "/config"), ("DELETE", "/subjects/TaskRating"), ("PUT", "/config/x"),
                         ("DELETE", "/subjects/TaskRating/versions/1")):
        assert (await client.request(method, path, json={"compatibility": "NONE"})).status_code == 401
    assert (await client.get("/subjects")).status_code == 200
    assert (await client.post("/compatibility/subjects/TaskRating/versions/latest", json=body(S))).status_code == 200


async def test_invalid_schemas_are_422_saying_where(client: httpx.AsyncClient) -> None:
    not_json = await client.post("/subjects/x/versions", json={"schema": "{nope"}, headers=AUTH)
    bad_keyword = await client.post("/subjects/x/versions", json=body({"type": "strin"}), headers=AUTH)
    avro = await client.post("/subjects/x/versions", json={"schema": "{}", "schemaType": "AVRO"}, headers=AUTH)
    bad_version = await client.get("/subjects/TaskRating/versions/zero")
    assert not_json.json()["error_code"] == 42201 and "not JSON" in not_json.json()["message"]
    assert bad_keyword.json()["error_code"] == 42201 and "/type" in bad_keyword.json()["message"]
    assert avro.json()["error_code"] == 42201 and "JSON schemas only" in avro.json()["message"]
    assert bad_version.status_code == 422 and bad_version.json()["error_code"] == 42202


async def test_validate_an_envelope(client: httpx.AsyncClient) -> None:
    examples = json.loads((SCHEMAS / "TaskCreated" / "v0.examples.json").read_text())
    good = await client.post("/validate", json=examples["valid"][0]["instance"])
    assert good.status_code == 200 and good.json()["valid"] is True and good.json()["schema_id"] > 0
    bad_instance = examples["valid"][0]["instance"] | {"payload": {"task_id": "x", "title": "no area"}}
    bad = await client.post("/validate", json=bad_instance)
    assert bad.status_code == 422 and bad.json()["error_code"] == 42212
    pointers = {e["pointer"] for e in bad.json()["errors"]}
    assert {"/payload", "/payload/task_id", "/payload/title"} <= pointers
    unknown_version = await client.post("/validate", json={"meta": {"event_name": "TaskCreated", "event_version": 9},
                                                           "payload": {}})
    unknown_event = await client.post("/validate", json={"meta": {"event_name": "Nope", "event_version": 0}})
    not_envelope = await client.post("/validate", content=b"[1]")
    assert (unknown_version.status_code, unknown_version.json()["error_code"]) == (404, 40411)
    assert (unknown_event.status_code, unknown_event.json()["error_code"]) == (404, 40410)
    assert (not_envelope.status_code, not_envelope.json()["error_code"]) == (422, 42210)


async def test_a_database_that_is_down_is_503_in_the_registry_format(client: httpx.AsyncClient) -> None:
    app = client._transport.app  # type: ignore[attr-defined]
    await app.state.resources.pool.close()
    envelope = {"meta": {"event_name": "TaskRating", "event_version": 0}, "payload": {}}
    for method, path, payload in (("GET", "/subjects", None), ("GET", "/schemas/ids/999", None),
                                  ("POST", "/validate", envelope),
                                  ("POST", "/subjects/x/versions", body({"type": "string"}))):
        r = await client.request(method, path, json=payload, headers=AUTH)
        assert (r.status_code, r.json()["error_code"], r.headers["retry-after"]) == (503, 50301, "2"), path
        assert r.headers["content-type"] == "application/vnd.schemaregistry.v1+json"
    health = await client.get("/health")
    assert health.status_code == 503 and health.json()["checks"]["database"].startswith("error")
