"""Broker records for the consumer tests, built the way the relay would publish them."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from eventbus.consumer.messages import RawMessage
from eventbus.envelope import encode, kafka_headers, new_envelope

_offsets = itertools.count()


def record(topic: str, value: bytes | None, *, key: bytes = b"k", partition: int = 0,
           headers: list[tuple[str, bytes]] | None = None) -> RawMessage:
    return RawMessage(topic, partition, next(_offsets), 1_795_000_000_000, key, value, headers or [])


def event_record(topic: str, name: str, version: int, payload: dict[str, Any], *,
                 event_id: uuid.UUID | None = None, partition: int = 0) -> RawMessage:
    envelope = new_envelope(name, version, payload, producer="test", event_id=event_id)
    return record(topic, encode(envelope), key=str(next(iter(payload.values()))).encode(), partition=partition,
                  headers=kafka_headers(envelope["meta"]))


def completed(task_id: uuid.UUID, creator_id: uuid.UUID, *, name: str = "TaskCompleted",
              event_id: uuid.UUID | None = None, topic: str = "hiring.task-results", partition: int = 0,
              candidate_id: uuid.UUID | None = None) -> RawMessage:
    return event_record(topic, name, 0, {"task_id": str(task_id), "creator_id": str(creator_id),
                                          "candidate_id": str(candidate_id or uuid.uuid4())},
                        event_id=event_id, partition=partition)


def manager(manager_id: uuid.UUID, version: int = 0, topic: str = "management.managers",
            partition: int = 0) -> RawMessage:
    payload: dict[str, Any] = {"manager_id": str(manager_id), "account_id": "acc"}
    if version < 2:
        payload |= {"first_name": "Ada", "last_name": "Lovelace"}
    if version >= 1:
        payload["username"] = "ada.l"
    return event_record(topic, "ManagerCreated", version, payload, partition=partition)


def rating(task_id: uuid.UUID, value: int = 3, *, topic: str = "hiring.task-ratings", partition: int = 0) -> RawMessage:
    return event_record(topic, "TaskRating", 0, {"task_id": str(task_id), "rating": value}, partition=partition)


#: the bonus database the consumer tests run on: every expand applied, no contract (ratings still from events)
BONUS_EVENTS_STAGE = ("comm070_2_managers", "us170_1_username", "us160_1_area")
#: the switches those tests run with: every event consumed and applied, ratings from TaskRating
BONUS_EVENTS_FLAGS: dict[str, Any] = {
    "bonus.manager_created_versions": [0, 1, 2], "bonus.task_created_versions": [0, 1],
    "bonus.task_results_consumer": "apply", "bonus.rating_source": "events", "bonus.task_rating_consumer": True,
    "bonus.manager_source": "local"}


async def bonus_handlers(url: str, rule: Any = None, **flags: Any) -> list[Any]:
    """Bonus's handlers on `url`, with BONUS_EVENTS_FLAGS (overridden by `flags`, `bonus.` left out) set in
    that database and read back the way a worker reads them."""
    import asyncpg

    from eventbus.control import Control
    from eventbus.db import plain_url
    from eventbus.flags import store
    from eventbus.links import Link
    from services.bonus.consumers import BonusConsumers
    from services.bonus.domain import CreditRule
    from services.flags import BONUS, BY_NAME
    values = {**BONUS_EVENTS_FLAGS, **{f"bonus.{k}": v for k, v in flags.items()}}
    control = Control(plain_url(url), name="test-bonus-worker", role="worker", specs=BONUS)
    conn = await asyncpg.connect(plain_url(url))
    try:
        await store.ensure_defaults(conn, BONUS)
        for name, value in values.items():
            await store.set_flag(conn, BY_NAME[name], value, by="test", reason="test set-up")
        await control.tick(conn)
    finally:
        await conn.close()
    consumers = BonusConsumers(control.switches, control.schema, rule or CreditRule(),
                               Link("hiring", "http://127.0.0.1:9", timeout=0.2))
    return consumers.handlers()
