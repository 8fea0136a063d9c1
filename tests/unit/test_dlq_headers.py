from __future__ import annotations

from eventbus.consumer.dlq import (
    H_REPLAY_COUNT,
    MESSAGE_LIMIT,
    STACKTRACE_LIMIT,
    dlq_headers,
    dlq_topic,
    parking_topic,
    truncate,
)
from eventbus.consumer.errors import Category, Classification
from eventbus.consumer.messages import RawMessage

FAILURE = Classification(Category.NON_RETRIABLE, "eventbus.consumer.errors.SchemaInvalid",
                         "/payload: 'task_id' is a required property", "Traceback ...")


def _message(headers: list[tuple[str, bytes]]) -> RawMessage:
    return RawMessage("hiring.task-results", 2, 41, 1_795_000_000_000, b"key", b"value", headers)


def test_topic_names_follow_the_design() -> None:
    assert dlq_topic("bonus", "hiring.task-results") == "dlq.bonus.hiring.task-results"
    assert parking_topic("bonus", "hiring.task-results") == "parking.bonus.hiring.task-results"


def test_original_headers_pass_through_and_dlq_headers_are_added() -> None:
    headers = dict(dlq_headers(_message([("event_id", b"e-1"), ("producer", b"hiring")]), "bonus", FAILURE, 3))
    assert headers["event_id"] == b"e-1" and headers["producer"] == b"hiring"
    assert headers["dlq.original.topic"] == b"hiring.task-results"
    assert headers["dlq.original.partition"] == b"2"
    assert headers["dlq.original.offset"] == b"41"
    assert headers["dlq.original.timestamp"] == b"1795000000000"
    assert headers["dlq.consumer.group"] == b"bonus"
    assert headers["dlq.attempts"] == b"3"
    assert headers["dlq.error.category"] == b"non-retriable"
    assert headers["dlq.error.class"] == b"eventbus.consumer.errors.SchemaInvalid"
    assert b"task_id" in headers["dlq.error.message"]
    assert headers["dlq.failed.at"].endswith(b"Z")


def test_dead_lettering_again_replaces_dlq_headers_but_keeps_the_replay_count() -> None:
    once = dlq_headers(_message([("event_id", b"e-1")]), "bonus", FAILURE, 1)
    replayed = [*once, (H_REPLAY_COUNT, b"2")]
    twice = dlq_headers(_message(replayed), "bonus", FAILURE, 1)
    names = [k for k, _ in twice]
    assert len(names) == len(set(names)), "a header appears twice: headers would grow on every round trip"
    assert dict(twice)[H_REPLAY_COUNT] == b"2"
    assert len(twice) == len(once) + 1


def test_long_messages_and_stacktraces_are_truncated() -> None:
    huge = Classification(Category.UNKNOWN, "X", "m" * 50_000, "s" * 100_000)
    headers = dict(dlq_headers(_message([]), "bonus", huge, 3))
    assert len(headers["dlq.error.message"]) <= MESSAGE_LIMIT
    assert len(headers["dlq.error.stacktrace"]) <= STACKTRACE_LIMIT
    assert headers["dlq.error.stacktrace"].endswith(b"[truncated]")


def test_truncate_never_splits_a_character() -> None:
    text = "é" * 1000
    out = truncate(text, 101)
    assert out.endswith("[truncated]")
    out.encode("utf-8")  # valid
