"""The event envelope of seed 004: `{"meta": {...}, "payload": {...}}`, and its Kafka headers.

`meta.event_id` is fixed when the event enters the outbox and is the idempotency key everywhere:
it never changes on retry, relay restart, DLQ or replay.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

Envelope = dict[str, Any]
Headers = list[tuple[str, bytes]]

# Header names: the same facts as `meta`, so tools can route without parsing the value.
H_EVENT_ID = "event_id"
H_EVENT_NAME = "event_name"
H_EVENT_VERSION = "event_version"
H_PRODUCER = "producer"
H_CONTENT_TYPE = "content-type"
CONTENT_TYPE = b"application/json"


class EnvelopeError(ValueError):
    """The bytes are not an envelope: not JSON, not an object, or without a usable `meta`."""


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def new_envelope(
    event_name: str,
    event_version: int,
    payload: Mapping[str, Any],
    *,
    producer: str,
    aggregate_id: str | None = None,
    correlation_id: str | None = None,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    meta: dict[str, Any] = {
        "event_id": str(event_id or uuid.uuid4()),
        "event_version": event_version,
        "event_name": event_name,
        "produced_at": utc_now_iso(),
        "producer": producer,
    }
    if aggregate_id is not None:
        meta["aggregate_id"] = aggregate_id
    if correlation_id is not None:
        meta["correlation_id"] = correlation_id
    return {"meta": meta, "payload": dict(payload)}


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope)


def decode(raw: bytes | None) -> Envelope:
    """Parse an envelope; raise :class:`EnvelopeError` saying what is wrong."""
    if raw is None:
        raise EnvelopeError("message has no value (tombstone)")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EnvelopeError(f"value is JSON {type(doc).__name__}, expected an object with meta and payload")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise EnvelopeError("envelope has no `meta` object")
    return doc


def identity(envelope: Envelope) -> tuple[str, int]:
    """(event_name, event_version) of a decoded envelope; EnvelopeError when either is unusable."""
    meta = envelope["meta"]
    name, version = meta.get("event_name"), meta.get("event_version")
    if not isinstance(name, str) or not name:
        raise EnvelopeError("meta.event_name is missing or not a string")
    if not isinstance(version, int) or isinstance(version, bool):
        raise EnvelopeError("meta.event_version is missing or not an integer")
    return name, version


def kafka_headers(meta: Mapping[str, Any]) -> Headers:
    headers: Headers = [
        (H_EVENT_ID, str(meta["event_id"]).encode()),
        (H_EVENT_NAME, str(meta["event_name"]).encode()),
        (H_EVENT_VERSION, str(meta["event_version"]).encode()),
        (H_CONTENT_TYPE, CONTENT_TYPE),
    ]
    if meta.get("producer"):
        headers.append((H_PRODUCER, str(meta["producer"]).encode()))
    return headers


def header_value(headers: Iterable[tuple[str, bytes]] | None, name: str) -> str | None:
    """The last value of header `name`, decoded; None when absent."""
    found: str | None = None
    for key, value in headers or ():
        if key == name:
            found = value.decode("utf-8", "replace") if value is not None else ""
    return found
