"""Which records a replay takes (filters), and what it does with each (replay, park or refuse)."""

from __future__ import annotations

import argparse
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from eventbus.consumer.dlq import H_GROUP, H_ORIGINAL_TOPIC, H_REPLAY_COUNT, PREFIX, parking_topic
from eventbus.consumer.replay.read import DlqRecord
from eventbus.envelope import EnvelopeError, decode

DEFAULT_MAX_REPLAYS = 3
H_REPLAY_ID = "dlq.replay.id"
DRY_ACTIONS = {"replayed": "would-replay", "parked": "would-park", "refused": "would-refuse"}


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    keys: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    error_classes: frozenset[str] = frozenset()

    def matches(self, record: DlqRecord) -> bool:
        failed = record.failed_at
        if self.since and (failed is None or failed < self.since):
            return False
        if self.until and (failed is None or failed > self.until):
            return False
        if self.keys and (record.key or b"").decode("utf-8", "replace") not in self.keys:
            return False
        if self.event_ids and record.event_id not in self.event_ids:
            return False
        if self.categories and record.category not in self.categories:
            return False
        return not (self.error_classes and not any(
            record.error_class == c or record.error_class.endswith("." + c) for c in self.error_classes))

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, datetime) else sorted(v)) for k, v in vars(self).items()
                if v}


_RELATIVE = re.compile(r"^(\d+)([smhd])$")


def parse_time(text: str) -> datetime:
    """ISO 8601 (`2026-11-23T10:00:00Z`, naive = UTC) or a duration ago (`90s`, `30m`, `2h`, `7d`)."""
    match = _RELATIVE.match(text.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time: write ISO 8601 (2026-11-23T10:00:00Z) or a duration ago (30m, 2h, 7d)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class ReplayOptions:
    group: str
    filters: Filters = Filters()
    source_topic: str | None = None
    target: str | None = None
    allow: frozenset[str] = frozenset()
    dry_run: bool = False
    limit: int | None = None
    rate: float | None = None
    max_replays: int = DEFAULT_MAX_REPLAYS
    again: bool = False
    operator: str = "unknown"
    #: read every DLQ topic from the dead letters kept in the group's database (see `stored`)
    from_database: bool = False


def replay_headers(record: DlqRecord, replay_id: int) -> list[tuple[str, bytes]]:
    """The original headers (no `dlq.*`), with the replay count incremented and the replay's id."""
    kept = [(k, v) for k, v in record.headers if not k.startswith(PREFIX)]
    return [*kept, (H_REPLAY_COUNT, str(record.replay_count + 1).encode()), (H_REPLAY_ID, str(replay_id).encode())]


#: the start of the reason `decide` gives for a record no consumer can ever apply
NEVER = "can never succeed"


def unreplayable(record: DlqRecord) -> str | None:
    """Why no consumer can ever apply this record, whatever is fixed: it is not an envelope (a tombstone, not
    JSON, not an object, no `meta`) or it has no usable `meta.event_id` (the dedupe key). None when it may."""
    try:
        envelope = decode(record.value)
    except EnvelopeError as exc:
        return str(exc)
    event_id = envelope["meta"].get("event_id")
    if not isinstance(event_id, str) or not event_id:
        return "envelope has no meta.event_id"
    try:
        uuid.UUID(event_id)
    except ValueError:
        return f"meta.event_id {event_id[:60]!r} is not a UUID"
    return None


def decide(record: DlqRecord, options: ReplayOptions) -> tuple[str, str | None, str]:
    """(action, target topic, why) for one selected record."""
    original = record.original_topic
    if original is None:
        return "refused", None, f"no {H_ORIGINAL_TOPIC} header: not a DLQ record of this runtime"
    group = record.header(H_GROUP) or options.group
    if record.replay_count >= options.max_replays:
        return "parked", parking_topic(group, original), f"replayed {record.replay_count} times already"
    target = options.target or original
    allowed = options.allow | {original}
    if target not in allowed:
        return "refused", target, f"target {target} is not allowed (allowed: {', '.join(sorted(allowed))}; " \
                                  "add it with --allow-topic)"
    never = unreplayable(record)
    if never is not None:
        return "refused", target, f"{NEVER}: {never}"
    return "replayed", target, ""
