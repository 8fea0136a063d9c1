"""What `list` and `show` print."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from eventbus.consumer.dlq import H_MESSAGE
from eventbus.consumer.replay.inventory import PENDING, STATES, UNKNOWN, UNREPLAYABLE, Ref, ref_of
from eventbus.consumer.replay.policy import unreplayable
from eventbus.consumer.replay.read import DlqRecord

#: distinct error messages shown under each row of `list`, most frequent first
MESSAGES_SHOWN = 3


def group_lines(records: Sequence[DlqRecord], states: Mapping[Ref, str] | None = None,
                what: str = "dead-lettered") -> list[str]:
    """One row per (topic, category, error class) with its count in each state, the most frequent messages
    under it with their counts, then the totals per error class and per state."""
    if not records:
        return [f"no {what} records"]
    states = states or {ref_of(r): PENDING for r in records}
    present = {states[ref_of(r)] for r in records}
    shown = [s for s in STATES if s in present]
    rows: dict[tuple[str, str, str], list[DlqRecord]] = {}
    for r in records:
        rows.setdefault((r.topic, r.category, r.error_class), []).append(r)
    lines = [f"{'topic':<36} {'category':<14} {'error class':<42} {'total':>5} "
             + " ".join(f"{s:>{max(len(s), 5)}}" for s in shown) + "  first failed / last failed"]
    for (topic, category, error_class), members in sorted(rows.items()):
        counts = Counter(states[ref_of(r)] for r in members)
        times = sorted(t for t in (r.failed_at for r in members) if t is not None)
        span = f"{ts(times[0])} / {ts(times[-1])}" if times else "-"
        lines.append(f"{topic:<36} {category:<14} {error_class:<42} {len(members):>5} "
                     + " ".join(f"{counts[s]:>{max(len(s), 5)}}" for s in shown) + f"  {span}")
        lines += _message_lines(members)
    by_class: Counter[str] = Counter(r.error_class for r in records)
    lines.append("by error class: " + ", ".join(f"{c} {n}" for c, n in by_class.most_common()))
    totals = Counter(states[ref_of(r)] for r in records)
    lines.append(f"{len(records)} {what} record(s): " + ", ".join(f"{totals[s]} {s}" for s in shown))
    if totals[UNREPLAYABLE]:
        lines.append(f"  {UNREPLAYABLE}: no consumer can ever apply them (a tombstone, not JSON, no meta or "
                     "meta.event_id); `dlq-show` one, `dlq-replay --dry-run` says why for each")
    if totals[UNKNOWN]:
        lines.append(f"  {UNKNOWN}: the replay log was not read (see the note above)")
    return lines


def _message_lines(members: Sequence[DlqRecord]) -> list[str]:
    by_message: dict[str, list[DlqRecord]] = {}
    for r in members:
        by_message.setdefault((r.header(H_MESSAGE) or "").strip(), []).append(r)
    ranked = sorted(by_message.items(), key=lambda item: -len(item[1]))
    lines = []
    for message, same in ranked[:MESSAGES_SHOWN]:
        sample = same[-1]
        lines.append(f"    {len(same):>5} x {message[:150] or '(no message)'}")
        lines.append(f"            e.g. {sample.ref} key={text(sample.key)} event_id={sample.event_id or '-'}")
    if len(ranked) > MESSAGES_SHOWN:
        rest = sum(len(same) for _, same in ranked[MESSAGES_SHOWN:])
        lines.append(f"    {rest:>5} x {len(ranked) - MESSAGES_SHOWN} other message(s) (`--records` lists each)")
    return lines


def record_lines(records: Sequence[DlqRecord], states: Mapping[Ref, str]) -> list[str]:
    """`--records`: one line per record."""
    lines = []
    for r in records:
        state = states.get(ref_of(r), PENDING)
        why = unreplayable(r) if state == UNREPLAYABLE else None
        message = why or (r.header(H_MESSAGE) or "")
        lines.append(f"  {r.ref:<44} {state:<12} key={text(r.key)} event_id={r.event_id or '-'} "
                     f"{r.error_class.rsplit('.', 1)[-1]}: {message[:120]}")
    return lines


def show_lines(record: DlqRecord) -> list[str]:
    stamp = ts(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)) if record.timestamp_ms else "-"
    lines = [f"record     {record.ref}",
             f"timestamp  {stamp}",
             f"key        {text(record.key)}"]
    if record.stored_offset is not None:
        lines.insert(1, f"kept       in the group's database; the broker had it at offset {record.stored_offset}")
    never = unreplayable(record)
    if never:
        lines.append(f"replay     can never succeed: {never}")
    lines.append("headers")
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
