"""Hiring and bonus APIs on real databases, talking over real HTTP where a link is synchronous: outcomes once,
404 and 409 with reasons, 503 with nothing written while bonus is down (COMM-040 before), balances with the
manager's details or a marked fallback (COMM-070), ratings from events or from hiring (COMM-060)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from services.bonus.api import create_app as bonus_app
from services.bonus.settings import BonusSettings
from services.hiring import handlers
from services.hiring.api import create_app as hiring_app
from services.hiring.settings import HiringSettings
from tests.integration.api_client import api, served
from tests.integration.conftest import SCHEMAS
from tests.integration.stages import count, fetch, set_flags
from tests.waiting import free_port

pytestmark = pytest.mark.integration
NOWHERE = "http://127.0.0.1:9"


def _hiring(url: str, bootstrap: str, bonus_url: str = NOWHERE) -> HiringSettings:
    return HiringSettings(database_url=url, hiring_database_url=url, kafka_bootstrap_servers=bootstrap,
                          schemas_dir=SCHEMAS, registry_url=NOWHERE, bonus_url=bonus_url, link_timeout=0.5,
                          link_breaker_reset=0.5)


def _bonus(url: str, bootstrap: str, management_url: str = NOWHERE, hiring_url: str = NOWHERE) -> BonusSettings:
    return BonusSettings(database_url=url, bonus_database_url=url, kafka_bootstrap_servers=bootstrap,
                         schemas_dir=SCHEMAS, registry_url=NOWHERE, management_url=management_url,
                         hiring_url=hiring_url, link_timeout=0.5, link_breaker_threshold=2, link_breaker_reset=0.5)


@pytest.fixture
def databases(make_database: Callable[..., str]) -> Callable[..., Any]:
    async def make(tree: str, *revisions: str, **flags: Any) -> str:
        url = make_database(tree, *revisions)
        await set_flags(url, {f"{tree}.{k}": v for k, v in flags.items()})
        return url
    return make


async def _task(hiring_db: str) -> tuple[uuid.UUID, uuid.UUID]:
    task_id, creator_id = uuid.uuid4(), uuid.uuid4()
    await fetch(hiring_db, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[A] x')", task_id, creator_id)
    return task_id, creator_id


async def test_before_comm040_a_completion_credits_over_http_or_is_503_with_nothing_written(
        databases: Callable[..., Any], bootstrap: str) -> None:
    hiring_db, bonus_db = await databases("hiring", "0001_before"), await databases("bonus", "0001_before")
    (task_id, creator_id), candidate = await _task(hiring_db), str(uuid.uuid4())
    async with api(hiring_app(_hiring(hiring_db, bootstrap))) as down:  # bonus is not there
        refused = await down.post(f"/tasks/{task_id}/complete", json={"candidate_id": candidate, "rating": 4})
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["dependency"] == "bonus"
    assert await count(hiring_db, "SELECT count(*) FROM tasks WHERE status = 'open'") == 1  # nothing written
    assert await count(hiring_db, "SELECT count(*) FROM outbox") == 0
    async with served(bonus_app(_bonus(bonus_db, bootstrap))) as bonus_url, \
            api(hiring_app(_hiring(hiring_db, bootstrap, bonus_url))) as client:
        done = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": candidate, "rating": 4})
        again = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": candidate, "rating": 4})
        async with httpx.AsyncClient(base_url=bonus_url) as bonus:
            # hiring's transaction rolled back after bonus credited (a timeout): the retry is the same credit
            retry = await bonus.post("/credits", json={"task_id": str(task_id), "creator_id": str(creator_id),
                                                       "candidate_id": candidate, "outcome": "completed", "rating": 4})
            other = await bonus.post("/credits", json={"task_id": str(task_id), "creator_id": str(creator_id),
                                                       "candidate_id": candidate, "outcome": "failed"})
    assert done.status_code == 200 and done.json()["rating"] == 4
    assert again.status_code == 409 and again.json()["status"] == "completed"
    assert retry.status_code == 200 and retry.json()["created"] is False
    assert other.status_code == 409 and other.json()["outcome"] == "completed"
    [credit] = await fetch(bonus_db, "SELECT amount, rating, source FROM ledger")
    assert (credit["amount"], credit["rating"], credit["source"]) == (12, 4, "http")
    rows = await fetch(hiring_db, "SELECT event_name FROM outbox ORDER BY id")
    assert [r["event_name"] for r in rows] == ["TaskRating"]  # COMM-040 before: no TaskCompleted yet


async def test_after_comm040_a_completion_emits_its_event_and_rating(databases: Callable[..., Any],
                                                                      bootstrap: str) -> None:
    hiring_db = await databases("hiring", "0001_before", credit_via_http=False, task_result_events=True)
    (task_id, creator_id), candidate = await _task(hiring_db), uuid.uuid4()
    other_task, _ = await _task(hiring_db)
    async with api(hiring_app(_hiring(hiring_db, bootstrap))) as client:
        done = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(candidate)})
        failed = await client.post(f"/tasks/{other_task}/fail", json={"candidate_id": str(candidate), "rating": 2})
        failed_ok = await client.post(f"/tasks/{other_task}/fail", json={"candidate_id": str(candidate)})
        unknown = await client.post(f"/tasks/{uuid.uuid4()}/complete", json={"candidate_id": str(candidate)})
        bad_rating = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(candidate),
                                                                           "rating": 6})
        rating = await client.get(f"/tasks/{task_id}/rating")
    assert done.status_code == 200 and done.json()["creator_id"] == str(creator_id)
    assert done.json()["rating"] == 3  # none given: the default rating
    assert failed.status_code == 422 and failed.json()["detail"][0]["loc"] == ["body", "rating"]
    assert failed_ok.status_code == 200
    assert unknown.status_code == 404 and unknown.json()["entity"] == "task"
    assert bad_rating.status_code == 422 and bad_rating.json()["detail"][0]["loc"] == ["body", "rating"]
    assert rating.json() == {"task_id": str(task_id), "status": "completed", "rating": 3}
    rows = await fetch(hiring_db, "SELECT event_name, topic, message_key FROM outbox ORDER BY id")
    assert [(r["event_name"], r["topic"], r["message_key"]) for r in rows] == [
        ("TaskCompleted", "hiring.task-results", str(task_id)),
        ("TaskRating", "hiring.task-ratings", str(task_id)),
        ("TaskFailed", "hiring.task-results", str(other_task)),
    ]


async def test_no_credit_path_on_is_503_and_writes_nothing(databases: Callable[..., Any], bootstrap: str) -> None:
    hiring_db = await databases("hiring", "0001_before", credit_via_http=False, task_result_events=False)
    task_id, _ = await _task(hiring_db)
    async with api(hiring_app(_hiring(hiring_db, bootstrap))) as client:
        r = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(uuid.uuid4())})
    assert r.status_code == 503 and "both off" in r.json()["detail"]
    assert await count(hiring_db, "SELECT count(*) FROM tasks WHERE status = 'open'") == 1


async def test_a_completion_racing_the_task_s_arrival_gets_the_truth_not_409(
        databases: Callable[..., Any], bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task's row commits (the hiring worker learnt it) after the completion's UPDATE looked and before its
    SELECT: the completion must succeed, not answer 409 "already open"."""
    hiring_db = await databases("hiring", "0001_before", credit_via_http=False, task_result_events=True)
    task_id, creator_id = uuid.uuid4(), uuid.uuid4()
    real_finish = handlers._finish
    inserted = []

    class Racing:
        """The completion's connection; right after its first UPDATE missed, the worker commits the task."""

        def __init__(self, conn: Any) -> None:
            self.conn = conn

        async def scalar(self, statement: Any, *a: Any, **k: Any) -> Any:
            result = await self.conn.scalar(statement, *a, **k)
            if not inserted:
                inserted.append(True)
                await fetch(hiring_db, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[A] x')",
                            task_id, creator_id)
            return result

    async def finish_with_the_race(conn: Any, *args: Any) -> Any:
        return await real_finish(Racing(conn), *args)

    monkeypatch.setattr(handlers, "_finish", finish_with_the_race)
    async with api(hiring_app(_hiring(hiring_db, bootstrap))) as client:
        r = await client.post(f"/tasks/{task_id}/complete", json={"candidate_id": str(uuid.uuid4())})
    assert inserted and r.status_code == 200, r.text
    assert await count(hiring_db, "SELECT count(*) FROM outbox WHERE event_name = 'TaskCompleted'") == 1


async def test_balance_with_the_manager_from_management_then_a_marked_fallback_while_it_is_down(
        databases: Callable[..., Any], make_database: Callable[..., str], bootstrap: str) -> None:
    """COMM-070 before: bonus asks management; while management is down it answers from the last copy it got,
    or a stub of the same structure, marked stale, never a 500; the breaker opens and stops calling."""
    from services.management.api import create_app as management_app
    from services.management.settings import ManagementSettings
    bonus_db = await databases("bonus", "0001_before")
    management_db = make_database("management", "0001_before")
    management = ManagementSettings(database_url=management_db, management_database_url=management_db,
                                    kafka_bootstrap_servers=bootstrap, registry_url=NOWHERE, schemas_dir=SCHEMAS)
    port = free_port()
    never_seen, stranger = uuid.uuid4(), uuid.uuid4()
    async with api(bonus_app(_bonus(bonus_db, bootstrap, management_url=f"http://127.0.0.1:{port}"))) as client:
        async with served(management_app(management), port=port) as management_url:
            async with httpx.AsyncClient(base_url=management_url) as m:
                manager_id = (await m.post("/managers", json={"first_name": "Ada", "last_name": "L",
                                                              "account_id": "a"})).json()["manager_id"]
            live = await client.get(f"/managers/{manager_id}/balance")
            unknown = await client.get(f"/managers/{stranger}/balance")
        # management is gone now
        cached = await client.get(f"/managers/{manager_id}/ledger")
        stub = await client.get(f"/managers/{never_seen}/balance")
        for _ in range(3):
            await client.get(f"/managers/{never_seen}/balance")
        health = (await client.get("/health")).json()
        metrics = (await client.get("/metrics")).text
    assert live.status_code == 200 and live.json()["manager"]["source"] == "management-api"
    assert live.json()["manager"]["first_name"] == "Ada" and not live.json()["manager"]["stale"]
    assert unknown.status_code == 404  # management said so
    assert cached.status_code == 200 and cached.json()["manager"]["source"] == "cache"
    assert cached.json()["manager"]["first_name"] == "Ada" and cached.json()["manager"]["stale"]
    assert stub.status_code == 200 and stub.json()["manager"] | {"manager_id": None} == {
        "manager_id": None, "account_id": None, "username": None, "first_name": None, "last_name": None,
        "source": "stub", "stale": True}
    assert health["links"]["management"]["breaker"] == "open"
    assert health["links"]["management"]["rejected"] >= 1  # the open breaker answered without calling
    assert 'breaker_state{dependency="management"} 1.0' in metrics
    assert 'link_fallbacks_total{dependency="management"}' in metrics


async def test_after_comm070_the_manager_comes_from_bonus_s_own_copy(databases: Callable[..., Any],
                                                                     bootstrap: str) -> None:
    bonus_db = await databases("bonus", "us170_1_username", manager_source="local", manager_fields="username")
    manager_id, stranger = uuid.uuid4(), uuid.uuid4()
    await fetch(bonus_db, "INSERT INTO managers (id, account_id, first_name, username) VALUES ($1, 'a', 'Ada', "
                          "'ada')", manager_id)
    async with api(bonus_app(_bonus(bonus_db, bootstrap))) as client:
        empty = await client.get(f"/managers/{manager_id}/balance")
        for outcome, amount in (("completed", 10), ("failed", 2)):
            await fetch(bonus_db, "INSERT INTO ledger (manager_id, task_id, outcome, amount, source, event_id) "
                                  "VALUES ($1, $2, $3, $4, 'event', $5)", manager_id, uuid.uuid4(), outcome, amount,
                        uuid.uuid4())
        after = await client.get(f"/managers/{manager_id}/balance")
        entries = await client.get(f"/managers/{manager_id}/ledger")
        unknown = await client.get(f"/managers/{stranger}/balance")
        unknown_ledger = await client.get(f"/managers/{stranger}/ledger")
    assert empty.json()["balance"] == 0 and empty.json()["manager"]["source"] == "local"
    assert empty.json()["manager"]["username"] == "ada"
    assert empty.json()["manager"]["first_name"] is None  # names are no longer read (US-170)
    assert after.json()["balance"] == 12 and after.json()["credits"] == 2
    assert [e["outcome"] for e in entries.json()["entries"]] == ["completed", "failed"]
    assert unknown.status_code == 404 and unknown_ledger.status_code == 404


async def test_a_task_s_rating_from_events_from_hiring_or_a_marked_fallback(
        databases: Callable[..., Any], bootstrap: str) -> None:
    """COMM-060: bonus's read path shows the rating from TaskRating events (before), asks hiring (after), and
    answers with rating null marked `fallback` while hiring is down."""
    before = await databases("bonus", "0001_before")
    task_id = uuid.uuid4()
    for db in (before,):
        await fetch(db, "INSERT INTO tasks (id, creator_id, title) VALUES ($1, $2, '[Go] Build')", task_id,
                    uuid.uuid4())
    await fetch(before, "INSERT INTO task_ratings (task_id, rating, event_id) VALUES ($1, 4, $2)", task_id,
                uuid.uuid4())
    async with api(bonus_app(_bonus(before, bootstrap))) as client:
        from_events = (await client.get(f"/tasks/{task_id}")).json()
    assert (from_events["rating"], from_events["rating_source"], from_events["title"]) == (4, "events", "Build")
    after = await databases("bonus", "heads", rating_source="hiring", task_rating_consumer=False)
    await fetch(after, "INSERT INTO tasks (id, creator_id, title, knowledge_area) VALUES ($1, $2, 'Build', 'Go')",
                task_id, uuid.uuid4())
    hiring_db = await databases("hiring", "0001_before", credit_via_http=False, task_result_events=True)
    await fetch(hiring_db, "INSERT INTO tasks (id, creator_id, title, status, rating) VALUES ($1, $2, '[Go] Build', "
                           "'completed', 5)", task_id, uuid.uuid4())
    async with served(hiring_app(_hiring(hiring_db, bootstrap))) as hiring_url, \
            api(bonus_app(_bonus(after, bootstrap, hiring_url=hiring_url))) as client:
        asked = (await client.get(f"/tasks/{task_id}")).json()
    async with api(bonus_app(_bonus(after, bootstrap))) as client:  # hiring is not there
        fallback = await client.get(f"/tasks/{task_id}")
    assert (asked["rating"], asked["rating_source"], asked["knowledge_area"]) == (5, "hiring", "Go")
    assert fallback.status_code == 200
    assert (fallback.json()["rating"], fallback.json()["rating_source"], fallback.json()["stale"]) == (
        None, "fallback", True)


async def test_the_ratings_lookup_answers_many_tasks_at_once_and_names_the_unknown_ones(
        databases: Callable[..., Any], bootstrap: str) -> None:
    hiring_db = await databases("hiring", "0001_before", credit_via_http=False, task_result_events=True)
    (done_task, _), (open_task, _) = await _task(hiring_db), await _task(hiring_db)
    stranger = uuid.uuid4()
    async with api(hiring_app(_hiring(hiring_db, bootstrap))) as client:
        assert (await client.post(f"/tasks/{done_task}/complete", json={"candidate_id": str(uuid.uuid4()),
                                                                         "rating": 5})).status_code == 200
        found = await client.post("/task-ratings/lookup", json={"task_ids": [str(open_task), str(stranger),
                                                                             str(done_task), str(open_task)]})
        empty = await client.post("/task-ratings/lookup", json={"task_ids": []})
        too_many = await client.post("/task-ratings/lookup", json={"task_ids": [str(uuid.uuid4())] * 1001})
        not_ids = await client.post("/task-ratings/lookup", json={"task_ids": ["x\u0000"]})
        huge = await client.post("/task-ratings/lookup", content=b'{"task_ids": [' + b"9" * 5000 + b"]}",
                                 headers={"content-type": "application/json"})
        deep = await client.post("/task-ratings/lookup", content=b'{"task_ids": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                                 headers={"content-type": "application/json"})
    assert found.status_code == 200
    assert found.json() == {"ratings": [{"task_id": str(open_task), "status": "open", "rating": None},
                                        {"task_id": str(done_task), "status": "completed", "rating": 5}],
                            "unknown": [str(stranger)]}
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "task_ids"]
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "task_ids"]
    assert not_ids.status_code == 422
    assert huge.status_code == 422 and deep.status_code == 422
