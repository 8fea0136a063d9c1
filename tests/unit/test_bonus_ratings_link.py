"""How the bonus worker asks hiring for a batch's ratings (COMM-060 after): one lookup per batch, one request
per task against a hiring from before the lookup, and what each refusal means for the batch.

Hiring is the edge here: httpx's MockTransport answers for it (the route itself is tested against a real
database in tests/integration/test_hiring_bonus_api.py, the whole path in tests/e2e/test_links.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from eventbus.consumer.errors import PoisonEvent
from eventbus.errors import DependencyUnavailable
from eventbus.links import Link
from services.bonus.consumers import LOOKUP_CHUNK, BonusConsumers
from services.bonus.domain import CreditRule


class Flags:
    def value(self, name: str) -> Any:
        assert name == "bonus.rating_source"
        return "hiring"


class Completed:
    def __init__(self, task_id: str) -> None:
        self.payload = {"task_id": task_id}


def consumers(handler: Any) -> tuple[BonusConsumers, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer: httpx.Response = handler(request)
        return answer

    link = Link("hiring", "http://hiring", transport=httpx.MockTransport(record), failure_threshold=100)
    return BonusConsumers(Flags(), None, CreditRule(), link), seen  # type: ignore[arg-type]


def lookup_answer(ratings: dict[str, int | None], unknown: tuple[str, ...] = ()) -> Any:
    def answer(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["task_ids"]
        return httpx.Response(200, json={
            "ratings": [{"task_id": t, "status": "completed" if ratings[t] else "open", "rating": ratings[t]}
                        for t in asked if t in ratings],
            "unknown": [t for t in asked if t in unknown]})
    return answer


async def test_one_lookup_per_batch_chunk() -> None:
    ids = [str(uuid.uuid4()) for _ in range(LOOKUP_CHUNK + 1)]
    bonus, seen = consumers(lookup_answer({t: 4 for t in ids}))
    found = await bonus._ratings([Completed(t) for t in ids] * 2, conn=None)  # type: ignore[arg-type]
    assert found == {t: 4 for t in ids}
    assert [r.url.path for r in seen] == ["/task-ratings/lookup"] * 2  # 501 distinct ids: two chunks


async def test_a_hiring_without_the_lookup_is_asked_task_by_task() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]

    def old_hiring(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/task-ratings/lookup":
            return httpx.Response(405, json={"detail": "Method Not Allowed"})
        task = request.url.path.split("/")[2]
        return httpx.Response(200, json={"task_id": task, "status": "completed", "rating": 2})

    bonus, seen = consumers(old_hiring)
    assert await bonus._ratings([Completed(t) for t in ids], conn=None) == {t: 2 for t in ids}  # type: ignore[arg-type]
    assert sorted(r.url.path for r in seen[1:]) == sorted(f"/tasks/{t}/rating" for t in ids)


async def test_an_unknown_task_is_poison_and_a_missing_rating_waits() -> None:
    known, stranger = str(uuid.uuid4()), str(uuid.uuid4())
    bonus, _ = consumers(lookup_answer({known: 4}, unknown=(stranger,)))
    with pytest.raises(PoisonEvent, match=stranger):
        await bonus._ratings([Completed(known), Completed(stranger)], conn=None)  # type: ignore[arg-type]
    bonus, _ = consumers(lookup_answer({known: None}))
    with pytest.raises(DependencyUnavailable, match="no rating yet"):
        await bonus._ratings([Completed(known)], conn=None)  # type: ignore[arg-type]
    bonus, _ = consumers(lambda request: httpx.Response(422, json={"detail": []}))
    with pytest.raises(DependencyUnavailable, match="answered 422"):
        await bonus._ratings([Completed(known)], conn=None)  # type: ignore[arg-type]
