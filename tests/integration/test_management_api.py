"""Management API on a real database: each write is the business row plus its event, or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import orjson
import pytest

from eventbus.db import plain_url
from services.management.api import create_app
from services.management.settings import ManagementSettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS

pytestmark = pytest.mark.integration


def _settings(url: str, bootstrap: str, **flags: object) -> ManagementSettings:
    # nothing listens on port 9: the schema client falls back to schemas/ on disk (the registry has its own tests)
    return ManagementSettings(database_url=url, kafka_bootstrap_servers=bootstrap, registry_url="http://127.0.0.1:9",
                              schemas_dir=SCHEMAS, **flags)


@pytest.fixture
def db(make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database("management")
    monkeypatch.setenv("MANAGEMENT_DATABASE_URL", url)
    return url


async def _count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_create_manager_writes_row_and_valid_event_in_one_go(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", json={"first_name": "Ada", "last_name": "Lovelace", "account_id": "a-1"})
        assert r.status_code == 201, r.text
        manager_id = r.json()["manager_id"]
        assert (await client.get(f"/managers/{manager_id}")).json()["username"] == "ada.lovelace"
    conn = await asyncpg.connect(plain_url(db))
    try:
        row = await conn.fetchrow("SELECT * FROM outbox")
    finally:
        await conn.close()
    assert (row["topic"], row["message_key"], row["event_name"], row["event_version"]) == (
        "management.managers", manager_id, "ManagerCreated", 0)
    envelope = orjson.loads(row["value"])
    assert envelope["payload"] == {"manager_id": manager_id, "first_name": "Ada", "last_name": "Lovelace",
                                   "account_id": "a-1"}
    assert envelope["meta"]["event_id"] == str(row["event_id"])
    assert row["published_at"] is None


async def test_schema_violation_is_422_at_the_request_field_and_writes_nothing(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        manager_id = (await client.post("/managers", json={
            "first_name": "A", "last_name": "B", "account_id": "x"})).json()["manager_id"]
        r = await client.post("/tasks", json={"creator_id": manager_id, "title": "no area prefix"})
    assert r.status_code == 422
    body = r.json()
    assert body["event"] == "TaskCreated v0"
    assert body["detail"][0]["loc"] == ["body", "title"]
    assert "does not match" in body["detail"][0]["msg"]
    assert await _count(db, "SELECT count(*) FROM tasks") == 0
    assert await _count(db, "SELECT count(*) FROM outbox WHERE event_name = 'TaskCreated'") == 0


async def test_v1_producer_flag_validates_username_against_v1(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap, manager_created_version=1))) as client:
        bad = await client.post("/managers", json={"first_name": "A", "last_name": "B", "account_id": "x",
                                                   "username": "Not Valid"})
        good = await client.post("/managers", json={"first_name": "A", "last_name": "B", "account_id": "x",
                                                    "username": "ab_1"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "username"]
    assert good.status_code == 201
    assert await _count(db, "SELECT count(*) FROM managers") == 1
    assert await _count(db, "SELECT count(*) FROM outbox WHERE event_version = 1") == 1


async def test_unknown_creator_is_404_naming_the_field(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/tasks", json={"creator_id": str(uuid.uuid4()), "title": "[A] b"})
        missing = await client.get(f"/tasks/{uuid.uuid4()}")
        not_uuid = await client.get("/managers/not-a-uuid")
    assert r.status_code == 404 and r.json()["loc"] == ["body", "creator_id"]
    assert missing.status_code == 404 and missing.json()["entity"] == "task"
    assert not_uuid.status_code == 422
    assert await _count(db, "SELECT count(*) FROM outbox") == 0


async def test_request_validation_names_the_field(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        r = await client.post("/managers", json={"first_name": "", "last_name": "B"})
    assert r.status_code == 422
    locs = [tuple(d["loc"]) for d in r.json()["detail"]]
    assert ("body", "first_name") in locs and ("body", "account_id") in locs


async def test_task_title_is_split_and_v0_event_carries_the_area(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        manager_id = (await client.post("/managers", json={
            "first_name": "A", "last_name": "B", "account_id": "x"})).json()["manager_id"]
        task = (await client.post("/tasks", json={"creator_id": manager_id, "title": "[Go] Build it"})).json()
    assert (task["title"], task["knowledge_area"], task["old_title"]) == ("Build it", "Go", "[Go] Build it")
    conn = await asyncpg.connect(plain_url(db))
    try:
        value = await conn.fetchval("SELECT value FROM outbox WHERE event_name = 'TaskCreated'")
    finally:
        await conn.close()
    assert orjson.loads(value)["payload"]["title"] == "[Go] Build it"


async def test_health_reports_database_and_broker(db: str, bootstrap: str) -> None:
    async with api(create_app(_settings(db, bootstrap))) as client:
        ok = await client.get("/health")
    assert ok.status_code == 200 and ok.json()["checks"] == {"database": "ok", "broker": "ok"}
    async with api(create_app(_settings(db, "127.0.0.1:9"))) as client:
        down = await client.get("/health")
    assert down.status_code == 503 and down.json()["checks"]["broker"].startswith("error")
