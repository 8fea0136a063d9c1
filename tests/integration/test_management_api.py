"""Management API on a real database, in each stage of seed 004: each write is the business row plus its event
(or none, before COMM-070), or nothing; what it stores and emits follows the switches and the columns."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from services.management.api import create_app
from services.management.settings import ManagementSettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS
from tests.integration.stages import count, fetch, set_flags

pytestmark = pytest.mark.integration
ADA = {"first_name": "Ada", "last_name": "Lovelace", "account_id": "a-1"}


def _settings(url: str, bootstrap: str) -> ManagementSettings:
    # nothing listens on port 9: the schema client falls back to schemas/ on disk (the registry has its own tests)
    return ManagementSettings(database_url=url, management_database_url=url, kafka_bootstrap_servers=bootstrap,
                              registry_url="http://127.0.0.1:9", schemas_dir=SCHEMAS)


@pytest.fixture
def stage(make_database: Callable[..., str]) -> Callable[..., Any]:
    async def make(*revisions: str, **flags: Any) -> str:
        url = make_database("management", *revisions)
        await set_flags(url, {f"management.{k}": v for k, v in flags.items()})
        return url
    return make


async def test_before_state_stores_names_and_combined_titles_and_emits_no_manager_event(
        stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("0001_before")
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", json=ADA)
        manager = (await client.get(f"/managers/{r.json()['manager_id']}")).json()
        task = (await client.post("/tasks", json={"creator_id": manager["manager_id"], "title": "[Go] Build it"}))
    assert r.status_code == 201 and task.status_code == 201
    assert (manager["first_name"], manager["username"]) == ("Ada", None)  # no username column yet
    assert await count(db, "SELECT count(*) FROM outbox WHERE event_name = 'ManagerCreated'") == 0  # COMM-070 sync
    [stored] = await fetch(db, "SELECT title FROM tasks")
    assert stored["title"] == "[Go] Build it"
    body = task.json()
    assert (body["title"], body["knowledge_area"], body["old_title"]) == ("Build it", "Go", "[Go] Build it")
    [event] = await fetch(db, "SELECT value FROM outbox WHERE event_name = 'TaskCreated'")
    assert orjson.loads(event["value"])["payload"]["title"] == "[Go] Build it"


async def test_create_manager_writes_row_and_valid_event_in_one_go(stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("us170_1_username", "backbone@head", manager_created_version=0)
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", json=ADA)
        assert r.status_code == 201, r.text
        manager_id = r.json()["manager_id"]
        assert (await client.get(f"/managers/{manager_id}")).json()["username"] == "ada.lovelace"
    [row] = await fetch(db, "SELECT * FROM outbox")
    assert (row["topic"], row["message_key"], row["event_name"], row["event_version"]) == (
        "management.managers", manager_id, "ManagerCreated", 0)
    envelope = orjson.loads(row["value"])
    assert envelope["payload"] == {"manager_id": manager_id, "first_name": "Ada", "last_name": "Lovelace",
                                   "account_id": "a-1"}
    assert envelope["meta"]["event_id"] == str(row["event_id"])
    # waiting for the relay: the outbox's insert trigger put it in outbox_pending, in the same transaction
    pending = await fetch(db, "SELECT id, lease_partition FROM outbox_pending")
    assert [tuple(r) for r in pending] == [(row["id"], row["lease_partition"])]
    assert await count(db, "SELECT count(*) FROM outbox_published") == 0


@pytest.mark.parametrize("version", [None, 0, 1])
async def test_one_username_rule_whatever_the_version_produced(stage: Callable[..., Any], bootstrap: str,
                                                               version: int | None) -> None:
    db = await stage("us170_1_username", manager_created_version=version)
    async with api(create_app(_settings(db, bootstrap))) as client:
        bad = await client.post("/managers", json={**ADA, "username": "Not Valid"})
        huge = await client.post("/managers", json={**ADA, "username": "a" * 500_000})
        good = await client.post("/managers", json={**ADA, "username": "ab_1"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "username"]
    assert huge.status_code == 422 and huge.json()["detail"][0]["loc"] == ["body", "username"]
    assert good.status_code == 201 and good.json()["username"] == "ab_1"
    assert await count(db, "SELECT count(*) FROM managers") == 1
    expected_events = 0 if version is None else 1
    assert await count(db, "SELECT count(*) FROM outbox") == expected_events


async def test_schema_violation_is_422_at_the_request_field_and_writes_nothing(
        stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("0001_before")
    async with api(create_app(_settings(db, bootstrap))) as client:
        manager_id = (await client.post("/managers", json=ADA)).json()["manager_id"]
        r = await client.post("/tasks", json={"creator_id": manager_id, "title": "no area prefix"})
    assert r.status_code == 422
    body = r.json()
    assert body["event"] == "TaskCreated v0"
    assert body["detail"][0]["loc"] == ["body", "title"]
    assert "does not match" in body["detail"][0]["msg"]
    assert await count(db, "SELECT count(*) FROM tasks") == 0
    assert await count(db, "SELECT count(*) FROM outbox WHERE event_name = 'TaskCreated'") == 0


async def test_split_titles_and_v1_events_after_us160(stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("us160_1_area", task_titles="split", task_created_version=1)
    async with api(create_app(_settings(db, bootstrap))) as client:
        manager_id = (await client.post("/managers", json=ADA)).json()["manager_id"]
        task = (await client.post("/tasks", json={"creator_id": manager_id, "title": "Build it",
                                                  "knowledge_area": "Go"})).json()
        shown = (await client.get(f"/tasks/{task['task_id']}")).json()
    assert shown["old_title"] == "[Go] Build it" and shown["knowledge_area"] == "Go"
    [row] = await fetch(db, "SELECT title, knowledge_area FROM tasks")
    assert (row["title"], row["knowledge_area"]) == ("Build it", "Go")
    [event] = await fetch(db, "SELECT value, event_version FROM outbox WHERE event_name = 'TaskCreated'")
    payload = orjson.loads(event["value"])["payload"]
    assert event["event_version"] == 1 and (payload["title"], payload["knowledge_area"]) == ("Build it", "Go")


async def test_after_us170_names_are_refused_and_v2_carries_the_username(
        stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("heads", manager_fields="username", manager_created_version=2)
    async with api(create_app(_settings(db, bootstrap))) as client:
        named = await client.post("/managers", json=ADA)
        anonymous = await client.post("/managers", json={"username": "ada.l", "account_id": "a-1"})
        shown = (await client.get(f"/managers/{anonymous.json()['manager_id']}")).json()
    assert named.status_code == 422 and named.json()["detail"][0]["loc"] == ["body", "first_name"]
    assert "no longer taken" in named.json()["detail"][0]["msg"]
    assert anonymous.status_code == 201 and shown["username"] == "ada.l" and shown["first_name"] is None
    [event] = await fetch(db, "SELECT value, event_version FROM outbox")
    assert event["event_version"] == 2
    assert orjson.loads(event["value"])["payload"] == {"manager_id": shown["manager_id"], "username": "ada.l",
                                                       "account_id": "a-1"}


async def test_unknown_creator_is_404_naming_the_field(stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("0001_before")
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/tasks", json={"creator_id": str(uuid.uuid4()), "title": "[A] b"})
        missing = await client.get(f"/tasks/{uuid.uuid4()}")
        not_uuid = await client.get("/managers/not-a-uuid")
    assert r.status_code == 404 and r.json()["loc"] == ["body", "creator_id"]
    assert missing.status_code == 404 and missing.json()["entity"] == "task"
    assert not_uuid.status_code == 422
    assert await count(db, "SELECT count(*) FROM outbox") == 0


@pytest.mark.parametrize(("field", "value"), [("first_name", "Ada\x00"), ("last_name", "bad\ud800"),
                                              ("account_id", "\x00"), ("username", "ada\x00")])
async def test_text_a_column_cannot_hold_is_422_naming_the_field(stage: Callable[..., Any], bootstrap: str,
                                                                 field: str, value: str) -> None:
    db = await stage("us170_1_username", manager_created_version=1)
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", content=orjson.dumps({**ADA, field: value}, option=orjson.OPT_NON_STR_KEYS)
                              if "\ud800" not in value else (b'{"first_name": "Ada", "last_name": "bad\\ud800", '
                                                             b'"account_id": "a-1"}'),
                              headers={"content-type": "application/json"})
        still_ok = await client.post("/managers", json=ADA)  # the connection and the app are fine
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]
    assert still_ok.status_code == 201
    assert await count(db, "SELECT count(*) FROM managers") == 1


async def test_request_validation_names_the_field(stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("0001_before")
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", json={"first_name": "", "last_name": "B"})
    assert r.status_code == 422
    locs = [tuple(d["loc"]) for d in r.json()["detail"]]
    assert ("body", "first_name") in locs and ("body", "account_id") in locs


async def test_health_reports_database_and_broker(stage: Callable[..., Any], bootstrap: str) -> None:
    db = await stage("0001_before")
    async with api(create_app(_settings(db, bootstrap))) as client:
        ok = await client.get("/health")
    assert ok.status_code == 200 and ok.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert ok.headers["x-server-instance"].startswith("management@")
    async with api(create_app(_settings(db, "127.0.0.1:9"))) as client:
        down = await client.get("/health")
    assert down.status_code == 503 and down.json()["checks"]["broker"].startswith("error")
