"""What the consumer runtime works on: a broker record, and the event decoded from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eventbus.envelope import Envelope


@dataclass(frozen=True, slots=True)
class RawMessage:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decoded:
    raw: RawMessage
    envelope: Envelope
    event_name: str
    event_version: int
    #: meta.event_id, lower-case and hyphenated (PostgreSQL's text form of a uuid)
    event_id: str

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.envelope["payload"]
        return payload

    @property
    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.envelope["meta"]
        return meta
