"""The replay CLI's pure parts: time parsing, filters, decisions and headers (no broker, no database)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from eventbus.consumer.replay import DlqRecord, Filters, ReplayOptions, decide, main, parse_time, replay_headers


def _record(**headers: str) -> DlqRecord:
    base = {"dlq.original.topic": "hiring.task-results", "dlq.original.partition": "3",
            "dlq.consumer.group": "bonus", "dlq.error.category": "non-retriable",
            "dlq.error.class": "eventbus.consumer.errors.SchemaInvalid",
            "dlq.failed.at": "2026-11-23T10:00:00.000Z", "event_id": "11111111-1111-1111-1111-111111111111"}
    merged = {**base, **headers}
    value = b'{"meta": {"event_id": "11111111-1111-1111-1111-111111111111"}, "payload": {}}'
    return DlqRecord("dlq.bonus.hiring.task-results", 3, 7, None, b"task-1", value,
                     [("content-type", b"application/json")] + [(k, v.encode()) for k, v in merged.items()])


def test_parse_time_takes_iso_and_durations() -> None:
    assert parse_time("2026-11-23T10:00:00Z") == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert parse_time("2026-11-23T10:00:00") == datetime(2026, 11, 23, 10, tzinfo=UTC)  # naive = UTC
    assert abs(parse_time("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
    with pytest.raises(argparse.ArgumentTypeError, match="30m, 2h, 7d"):
        parse_time("yesterday")


@pytest.mark.parametrize(("filters", "expected"), [
    (Filters(), True),
    (Filters(since=datetime(2026, 11, 23, 9, tzinfo=UTC)), True),
    (Filters(since=datetime(2026, 11, 23, 11, tzinfo=UTC)), False),
    (Filters(until=datetime(2026, 11, 23, 9, tzinfo=UTC)), False),
    (Filters(keys=frozenset({"task-1"})), True),
    (Filters(keys=frozenset({"task-2"})), False),
    (Filters(event_ids=frozenset({"11111111-1111-1111-1111-111111111111"})), True),
    (Filters(categories=frozenset({"unknown"})), False),
    (Filters(error_classes=frozenset({"SchemaInvalid"})), True),  # the short name works
    (Filters(error_classes=frozenset({"eventbus.consumer.errors.SchemaInvalid"})), True),
    (Filters(error_classes=frozenset({"Invalid"})), False),  # but not any suffix
])
def test_filters(filters: Filters, expected: bool) -> None:
    assert filters.matches(_record()) is expected


def test_decide_home_parking_and_allowlist() -> None:
    options = ReplayOptions(group="bonus", max_replays=2)
    assert decide(_record(), options) == ("replayed", "hiring.task-results", "")
    assert decide(_record(**{"dlq.replay.count": "2"}), options)[:2] == ("parked", "parking.bonus.hiring.task-results")
    action, target, why = decide(_record(), ReplayOptions(group="bonus", target="retry.results"))
    assert (action, target) == ("refused", "retry.results") and "--allow-topic" in why
    allowed = ReplayOptions(group="bonus", target="retry.results", allow=frozenset({"retry.results"}))
    assert decide(_record(), allowed)[:2] == ("replayed", "retry.results")


def test_replay_headers_drop_dlq_headers_and_count_up() -> None:
    headers = replay_headers(_record(**{"dlq.replay.count": "1"}), replay_id=42)
    assert [k for k, _ in headers if k.startswith("dlq.")] == ["dlq.replay.count", "dlq.replay.id"]
    assert dict(headers)["dlq.replay.count"] == b"2"
    assert dict(headers)["event_id"] == b"11111111-1111-1111-1111-111111111111"



@pytest.mark.parametrize(("argv", "message"), [
    (["replay", "--group", "bonus", "--limit", "0"], "--limit must be at least 1"),
    (["replay", "--group", "bonus", "--event-id", "not-a-uuid"], "is not a UUID"),
])
def test_bad_replay_arguments_are_refused_before_anything_is_read(argv: list[str], message: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bootstrap", "127.0.0.1:9", *argv]) == 2
    assert message in capsys.readouterr().err
