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
