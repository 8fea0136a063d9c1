"""Bonus's consumer in the stages seed 004 passes through, on a real database: a completion whose rating has
not arrived is never credited a guessed amount (and the two topics' consumers racing cannot lose it); both
credit paths on at once credit once; the counting consumer has no business effect; TaskCreated titles are
split once parsing is on; ManagerCreated versions and the name switch decide what is stored."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from eventbus.consumer.dlq import DeadLetterWriter
from eventbus.consumer.processor import BatchProcessor, ProcessorConfig
from eventbus.db import plain_url
from eventbus.schemas.client import SchemaClient
from services.bonus.domain import CreditRule, http_credit_id
from tests.integration.consumer_helpers import (
    BONUS_EVENTS_STAGE,
    bonus_handlers,
    completed,
    event_record,
    manager,
    rating,
)
from tests.integration.stages import fetch

pytestmark = pytest.mark.integration
RULE = CreditRule()


async def _processor(url: str, bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str],
                     **flags: Any) -> BatchProcessor:
    group = unique("bonus")
    return BatchProcessor(group=group, dsn=plain_url(url), schemas=schemas,
                          handlers=await bonus_handlers(url, RULE, **flags), dlq=DeadLetterWriter(bootstrap, group),
                          config=ProcessorConfig(backoff_base=0.01, backoff_cap=0.05))


async def test_a_completion_before_its_rating_waits_and_is_credited_by_its_rating(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    processor = await _processor(url, bootstrap, schemas, unique)
    creator, task = uuid.uuid4(), uuid.uuid4()
    try:
        await processor.process([completed(task, creator)])  # TaskCompleted first: its TaskRating is late
        assert await fetch(url, "SELECT * FROM ledger") == []  # not credited a guessed amount
        assert len(await fetch(url, "SELECT * FROM pending_credits")) == 1
        await processor.process([rating(task, 5)])
    finally:
        await processor.close()
    [credit] = await fetch(url, "SELECT amount, rating, source FROM ledger")
    assert (credit["amount"], credit["rating"], credit["source"]) == (14, 5, "event")
    assert await fetch(url, "SELECT * FROM pending_credits") == []


async def test_the_two_topics_consumers_racing_credit_every_completion_once_by_its_rating(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    """Two processors, as the worker's two agents (task-results and task-ratings) are: batches of completions
    and of ratings for the same tasks are applied concurrently, in both orders, many times."""
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    results = await _processor(url, bootstrap, schemas, unique)
    ratings = await _processor(url, bootstrap, schemas, unique)
    rng = random.Random(60)
    creator = uuid.uuid4()
    expected: dict[uuid.UUID, int] = {}
    try:
        for _ in range(30):
            tasks = [uuid.uuid4() for _ in range(rng.randint(1, 20))]
            stars = {t: rng.randint(1, 5) for t in tasks}
            expected |= {t: RULE.amount("completed", s) for t, s in stars.items()}
            done = [completed(t, creator) for t in tasks]
            rated = [rating(t, stars[t]) for t in tasks]
            rng.shuffle(done)
            await asyncio.gather(results.process(done), ratings.process(rated))
    finally:
        await results.close()
        await ratings.close()
    rows = await fetch(url, "SELECT task_id, amount FROM ledger")
    assert {r["task_id"]: r["amount"] for r in rows} == expected and len(rows) == len(expected)
    assert await fetch(url, "SELECT * FROM pending_credits") == []


async def test_both_credit_paths_on_credit_once(make_database: Callable[..., str], bootstrap: str,
                                                schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    """COMM-040 between steps 5a and 5b: hiring still calls POST /credits and the consumer credits too."""
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    creator, task = uuid.uuid4(), uuid.uuid4()
    await fetch(url, "INSERT INTO ledger (manager_id, task_id, outcome, amount, rating, source, event_id) "
                     "VALUES ($1, $2, 'completed', 12, 4, 'http', $3)", creator, task,
                http_credit_id(task, "completed"))
    processor = await _processor(url, bootstrap, schemas, unique)
    try:
        await processor.process([rating(task, 4), completed(task, creator)])
    finally:
        await processor.close()
    assert len(await fetch(url, "SELECT * FROM ledger")) == 1
    assert processor.metrics.repeated_facts._value.get() == 1


async def test_the_counting_consumer_has_no_business_effect(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    url = make_database("bonus", *BONUS_EVENTS_STAGE, "comm040_2_results_seen")
    processor = await _processor(url, bootstrap, schemas, unique, task_results_consumer="count")
    creator = uuid.uuid4()
    try:
        await processor.process([completed(uuid.uuid4(), creator), completed(uuid.uuid4(), creator, name="TaskFailed")])
    finally:
        await processor.close()
    assert await fetch(url, "SELECT * FROM ledger") == []
    seen = await fetch(url, "SELECT outcome FROM task_results_seen ORDER BY outcome")
    assert [s["outcome"] for s in seen] == ["completed", "failed"]


async def test_titles_are_split_once_parsing_is_on(make_database: Callable[..., str], bootstrap: str,
                                                   schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    off = await _processor(url, bootstrap, schemas, unique, task_area_parsing=False)
    on = await _processor(url, bootstrap, schemas, unique, task_area_parsing=True)
    creator = str(uuid.uuid4())
    v0 = event_record("management.tasks", "TaskCreated", 0, {"task_id": str(uuid.uuid4()), "creator_id": creator,
                                                             "title": "[Go] Build"})
    v1 = event_record("management.tasks", "TaskCreated", 1, {"task_id": str(uuid.uuid4()), "creator_id": creator,
                                                             "title": "Test", "knowledge_area": "Go"})
    v0_later = event_record("management.tasks", "TaskCreated", 0, {"task_id": str(uuid.uuid4()),
                                                                   "creator_id": creator, "title": "[Py] Run"})
    try:
        await off.process([v0])  # US-160 before step 9: stored as it comes
        await on.process([v1, v0_later])
    finally:
        await off.close()
        await on.close()
    rows = await fetch(url, "SELECT title, knowledge_area FROM tasks ORDER BY title")
    assert [(r["title"], r["knowledge_area"]) for r in rows] == [("Run", "Py"), ("Test", "Go"), ("[Go] Build", None)]


async def test_manager_versions_and_the_name_switch_decide_what_is_stored(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str]) -> None:
    url = make_database("bonus", *BONUS_EVENTS_STAGE)
    names = await _processor(url, bootstrap, schemas, unique, manager_fields="names+username")
    usernames = await _processor(url, bootstrap, schemas, unique, manager_fields="username")
    first, second = uuid.uuid4(), uuid.uuid4()
    try:
        await names.process([manager(first, 1)])
        await usernames.process([manager(second, 1)])  # US-170 step 18: names are no longer read or kept
    finally:
        await names.close()
        await usernames.close()
    rows = {r["id"]: r for r in await fetch(url, "SELECT id, first_name, username FROM managers")}
    assert (rows[first]["first_name"], rows[first]["username"]) == ("Ada", "ada.l")
    assert (rows[second]["first_name"], rows[second]["username"]) == (None, "ada.l")
