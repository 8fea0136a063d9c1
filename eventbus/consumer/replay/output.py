"""What `list` and `show` print."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

from eventbus.consumer.dlq import H_MESSAGE
from eventbus.consumer.replay.read import DlqRecord


def group_lines(records: Sequence[DlqRecord]) -> list[str]:
    if not records:
        return ["no dead-lettered records"]
    counts: Counter[tuple[str, str, str]] = Counter((r.topic, r.category, r.error_class) for r in records)
    lines = [f"{'DLQ topic':<36} {'category':<14} {'error class':<42} {'count':>5}  first failed / last failed"]
    for (topic, category, error_class), count in sorted(counts.items()):
        matching = [r for r in records if (r.topic, r.category, r.error_class) == (topic, category, error_class)]
        times = sorted(t for t in (r.failed_at for r in matching) if t is not None)
        span = f"{ts(times[0])} / {ts(times[-1])}" if times else "-"
        lines.append(f"{topic:<36} {category:<14} {error_class:<42} {count:>5}  {span}")
        sample = matching[-1]
        lines.append(f"    e.g. {sample.ref} key={text(sample.key)} event_id={sample.event_id or '-'}: "
                     f"{(sample.header(H_MESSAGE) or '')[:150]}")
    lines.append(f"{len(records)} record(s)")
    return lines


def show_lines(record: DlqRecord) -> list[str]:
    stamp = ts(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)) if record.timestamp_ms else "-"
    lines = [f"record     {record.ref}",
             f"timestamp  {stamp}",
             f"key        {text(record.key)}", "headers"]
    lines += [f"  {k}: {v.decode('utf-8', 'replace')}" for k, v in record.headers]
    lines.append("value")
    try:
        lines += ["  " + line for line in json.dumps(json.loads(record.value or b""), indent=2).splitlines()]
    except ValueError:
        lines.append(f"  (not JSON) {record.value!r}"[:2000])
    return lines


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def text(value: bytes | None) -> str:
    return "-" if value is None else value.decode("utf-8", "replace")
