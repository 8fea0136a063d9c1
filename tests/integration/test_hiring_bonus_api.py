"""Hiring and bonus APIs on real databases: outcomes once, 404 and 409 with reasons, balances."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import pytest

from eventbus.db import plain_url
from services.bonus.api import create_app as bonus_app
from services.bonus.settings import BonusSettings
from services.hiring.api import create_app as hiring_app
from services.hiring.settings import HiringSettings
from tests.integration.api_client import api
from tests.integration.conftest import SCHEMAS

pytestmark = pytest.mark.integration


async def _execute(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.fixture
def hiring_db(make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database("hiring")
    monkeypatch.setenv("HIRING_DATABASE_URL", url)
    return url


@pytest.fixture
def bonus_db(make_database: Callable[[str], str], monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database("bonus")
    monkeypatch.setenv("BONUS_DATABASE_URL", url)
    return url


async def test_complete_task_emits_result_and_rating_once(hiring_db: str, bootstrap: str) -> None:
    task_id, creator_id, candidate = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _execute(hiring_db, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, 'x')", task_id, creator_id)
    settings = HiringSettings(database_url=hiring_db, kafka_bootstrap_servers=bootstrap, schemas_dir=SCHEMAS,
                              registry_url="http://127.0.0.1:9")
    async with api(hiring_app(settings)) as client:
        done = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(candidate), "rating": 5})
        again = await client.post(f"/tasks/{task_id}/fail", json={"candidate_id": str(candidate)})
        unknown = await client.post(f"/tasks/{uuid.uuid4()}/complete", json={"candidate_id": str(candidate)})
        bad_rating = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(candidate),
                                                                           "rating": 6})
        task = await client.get(f"/tasks/{task_id}")
    assert done.status_code == 200 and done.json()["creator_id"] == str(creator_id)
    assert again.status_code == 409 and again.json()["status"] == "completed"
    assert unknown.status_code == 404 and unknown.json()["entity"] == "task"
    assert bad_rating.status_code == 422 and bad_rating.json()["detail"][0]["loc"] == ["body", "rating"]
    assert task.json()["status"] == "completed" and task.json()["rating"] == 5
    rows = await _execute(hiring_db, "SELECT event_name, topic, message_key FROM outbox ORDER BY id")
    assert [(r["event_name"], r["topic"], r["message_key"]) for r in rows] == [
        ("TaskCompleted", "hiring.task-results", str(task_id)),
        ("TaskRating", "hiring.task-ratings", str(task_id)),
    ]


async def test_balance_sums_the_ledger_and_unknown_manager_is_404(bonus_db: str, bootstrap: str) -> None:
    manager_id, stranger = uuid.uuid4(), uuid.uuid4()
    await _execute(bonus_db, "INSERT INTO managers (id, account_id) VALUES ($1, 'a')", manager_id)
    settings = BonusSettings(database_url=bonus_db, kafka_bootstrap_servers=bootstrap, schemas_dir=SCHEMAS)
    async with api(bonus_app(settings)) as client:
        empty = await client.get(f"/managers/{manager_id}/balance")
        for outcome, amount in (("completed", 10), ("failed", 2)):
            await _execute(bonus_db, "INSERT INTO ledger (manager_id, task_id, outcome, amount, event_id) "
                                     "VALUES ($1, $2, $3, $4, $5)", manager_id, uuid.uuid4(), outcome, amount,
                           uuid.uuid4())
        after = await client.get(f"/managers/{manager_id}/balance")
        entries = await client.get(f"/managers/{manager_id}/ledger")
        unknown = await client.get(f"/managers/{stranger}/balance")
        unknown_ledger = await client.get(f"/managers/{stranger}/ledger")
    assert empty.json() == {"manager_id": str(manager_id), "balance": 0, "credits": 0}
    assert after.json()["balance"] == 12 and after.json()["credits"] == 2
    assert [e["outcome"] for e in entries.json()] == ["completed", "failed"]
    assert unknown.status_code == 404 and unknown_ledger.status_code == 404
