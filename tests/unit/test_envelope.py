from __future__ import annotations

import uuid

import pytest

from eventbus.envelope import (
    EnvelopeError,
    decode,
    encode,
    header_value,
    identity,
    kafka_headers,
    new_envelope,
)


def test_new_envelope_fixes_identity_and_carries_meta() -> None:
    env = new_envelope("TaskCreated", 0, {"task_id": "t"}, producer="management", aggregate_id="t")
    meta = env["meta"]
    assert uuid.UUID(meta["event_id"])
    assert (meta["event_name"], meta["event_version"], meta["producer"], meta["aggregate_id"]) == (
        "TaskCreated", 0, "management", "t")
    assert meta["produced_at"].endswith("Z")
    assert decode(encode(env)) == env


def test_headers_carry_the_same_facts_as_meta() -> None:
    env = new_envelope("TaskFailed", 0, {}, producer="hiring")
    headers = kafka_headers(env["meta"])
    assert header_value(headers, "event_id") == env["meta"]["event_id"]
    assert header_value(headers, "event_name") == "TaskFailed"
    assert header_value(headers, "event_version") == "0"
    assert header_value(headers, "producer") == "hiring"
    assert header_value(headers, "missing") is None


@pytest.mark.parametrize(("raw", "reason"), [
    (None, "tombstone"),
    (b"\xff\x00", "not JSON"),
    (b"[1, 2]", "JSON list"),
    (b'{"payload": {}}', "no `meta`"),
])
def test_decode_says_what_is_wrong(raw: bytes | None, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode(raw)


@pytest.mark.parametrize(("meta", "reason"), [
    ({"event_version": 0}, "event_name"),
    ({"event_name": "X"}, "event_version"),
    ({"event_name": "X", "event_version": "0"}, "event_version"),
    ({"event_name": "X", "event_version": True}, "event_version"),
])
def test_identity_requires_name_and_integer_version(meta: dict[str, object], reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        identity({"meta": meta})
