"""What `list` shows of each DLQ record: pending, replayed, parked, or one that can never succeed.

Replayed and parked come from the replay log in the record's consumer group's database; a record no
replay sent anywhere is pending, unless no consumer can ever apply it (policy.unreplayable). When the
replay log cannot be read, those records are `unknown` and a note says why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import asyncpg

from eventbus.consumer.dlq import H_GROUP
from eventbus.consumer.replay.log import ReplayLog, redact
from eventbus.consumer.replay.policy import unreplayable
from eventbus.consumer.replay.read import DlqRecord, ReplayError
from eventbus.db import database_url_for

PENDING, REPLAYED, PARKED, UNREPLAYABLE, UNKNOWN = "pending", "replayed", "parked", "unreplayable", "unknown"
#: the order of the columns in `list`
STATES = (PENDING, REPLAYED, PARKED, UNREPLAYABLE, UNKNOWN)
Ref = tuple[str, int, int]


def group_of(record: DlqRecord) -> str:
    """The consumer group that dead-lettered it: its header, else the middle of `dlq.<group>.<topic>`."""
    return record.header(H_GROUP) or record.topic.split(".")[1]


def ref_of(record: DlqRecord) -> Ref:
    return (record.topic, record.partition, record.offset)


async def dlq_states(records: Sequence[DlqRecord], server_url: str | None) -> tuple[dict[Ref, str], list[str]]:
    """Each record's state, and notes on the replay logs that could not be read."""
    logged: dict[Ref, str] = {}
    unread: set[str] = set()
    notes = []
    by_group: dict[str, list[DlqRecord]] = {}
    for record in records:
        by_group.setdefault(group_of(record), []).append(record)
    for group, members in sorted(by_group.items()):
        dsn = (database_url_for(server_url, group, os.environ) if server_url
               else os.environ.get(f"{group.upper()}_DATABASE_URL"))
        if not dsn:
            unread.add(group)
            notes.append(f"replay log of group {group} not read: no database (pass --database-url or start the "
                         "stack): its records that can be replayed show as unknown")
            continue
        try:
            log = await ReplayLog.connect(dsn)
        except ReplayError as exc:
            unread.add(group)
            notes.append(f"replay log of group {group} not read: {exc}")
            continue
        try:
            logged.update(await log.states(members))
        except asyncpg.PostgresError as exc:
            unread.add(group)
            notes.append(f"replay log of group {group} not read from {redact(dsn)}: {exc} (is it the group's "
                         "database, migrated? `make migrate`)")
        finally:
            await log.close()
    states = {}
    for record in records:
        ref = ref_of(record)
        if ref in logged:
            states[ref] = PARKED if logged[ref] == "parked" else REPLAYED
        elif unreplayable(record) is not None:
            states[ref] = UNREPLAYABLE
        else:
            states[ref] = UNKNOWN if group_of(record) in unread else PENDING
    return states, notes
