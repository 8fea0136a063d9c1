"""What `dlq-list` and `dlq-replay --dry-run` say about records: which can never succeed and why, and counts
per state and per error message (not one example per class)."""

from __future__ import annotations

import json

import pytest

from eventbus.consumer.replay import DlqRecord, ReplayOptions, decide
from eventbus.consumer.replay.inventory import PARKED, PENDING, REPLAYED, UNREPLAYABLE, ref_of
from eventbus.consumer.replay.output import group_lines, record_lines, show_lines
from eventbus.consumer.replay.policy import unreplayable

EVENT_ID = "11111111-1111-1111-1111-111111111111"
GOOD = json.dumps({"meta": {"event_id": EVENT_ID, "event_name": "TaskCompleted", "event_version": 0},
                   "payload": {}}).encode()


def _record(offset: int, value: bytes | None = GOOD, error_class: str = "eventbus.consumer.errors.SchemaInvalid",
            message: str = "/payload/rating: 9 is greater than the maximum of 5") -> DlqRecord:
    headers = {"dlq.original.topic": "hiring.task-results", "dlq.original.partition": "1",
               "dlq.consumer.group": "bonus", "dlq.error.category": "non-retriable", "dlq.error.class": error_class,
               "dlq.error.message": message, "dlq.failed.at": "2026-11-23T10:00:00.000Z"}
    return DlqRecord("dlq.bonus.hiring.task-results", 1, offset, None, b"task-1", value,
                     [(k, v.encode()) for k, v in headers.items()])


@pytest.mark.parametrize(("value", "reason"), [
    (None, "tombstone"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "expected an object"),
    (b'{"payload": {}}', "no `meta`"),
    (b'{"meta": {}, "payload": {}}', "no meta.event_id"),
    (b'{"meta": {"event_id": "abc"}, "payload": {}}', "is not a UUID"),
])
def test_records_that_can_never_succeed_say_why(value: bytes | None, reason: str) -> None:
    found = unreplayable(_record(0, value))
    assert found is not None and reason in found
    action, target, why = decide(_record(0, value), ReplayOptions(group="bonus", dry_run=True))
    assert (action, target) == ("refused", "hiring.task-results")
    assert why.startswith("can never succeed") and reason in why


def test_a_well_formed_record_can_be_replayed() -> None:
    assert unreplayable(_record(0)) is None
    assert decide(_record(0), ReplayOptions(group="bonus"))[0] == "replayed"


def test_a_record_replayed_too_often_is_parked_even_if_it_could_never_succeed() -> None:
    record = _record(0, b"not json")
    headers = [*record.headers, ("dlq.replay.count", b"3")]
    parked = DlqRecord(record.topic, record.partition, record.offset, None, record.key, record.value, headers)
    assert decide(parked, ReplayOptions(group="bonus"))[0] == "parked"


def test_list_counts_each_state_and_each_message() -> None:
    records = [_record(0), _record(1), _record(2), _record(3, message="/payload/rating: 7 is greater than the maximum"),
               _record(4, None, "eventbus.envelope.EnvelopeError", "message has no value (tombstone)")]
    states = {ref_of(records[0]): REPLAYED, ref_of(records[1]): PARKED, ref_of(records[2]): PENDING,
              ref_of(records[3]): PENDING, ref_of(records[4]): UNREPLAYABLE}
    lines = group_lines(records, states)
    assert lines[0].split()[:5] == ["topic", "category", "error", "class", "total"]
    assert [c for c in lines[0].split() if c in ("pending", "replayed", "parked", "unreplayable")] == [
        "pending", "replayed", "parked", "unreplayable"]
    schema_row = next(line for line in lines if "SchemaInvalid" in line and line.startswith("dlq."))
    assert schema_row.split()[3:8] == ["4", "2", "1", "1", "0"]  # total, pending, replayed, parked, unreplayable
    assert any(line.strip().startswith("3 x /payload/rating: 9 is greater") for line in lines)
    assert any(line.strip().startswith("1 x /payload/rating: 7 is greater") for line in lines)
    assert "by error class: eventbus.consumer.errors.SchemaInvalid 4, eventbus.envelope.EnvelopeError 1" in lines
    assert "5 dead-lettered record(s): 2 pending, 1 replayed, 1 parked, 1 unreplayable" in lines
    assert any("no consumer can ever apply them" in line for line in lines)


def test_only_the_most_frequent_messages_are_shown_and_the_rest_counted() -> None:
    records = [_record(i, message=f"message {i % 5}") for i in range(10)]
    lines = group_lines(records)
    assert sum(" x message " in line for line in lines) == 3
    assert any("4 x 2 other message(s)" in line for line in lines)


def test_records_and_show_name_why_a_record_can_never_succeed() -> None:
    tombstone = _record(4, None, "eventbus.envelope.EnvelopeError", "message has no value (tombstone)")
    [line] = record_lines([tombstone], {ref_of(tombstone): UNREPLAYABLE})
    assert "unreplayable" in line and "EnvelopeError: message has no value (tombstone)" in line
    assert "replay     can never succeed: message has no value (tombstone)" in show_lines(tombstone)
    assert not any(line.startswith("replay ") for line in show_lines(_record(0)))
