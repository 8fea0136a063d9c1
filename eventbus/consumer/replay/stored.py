"""The dead letters' copies in the consumer groups' databases (`dlq_records`, kept by `DeadLetterWriter`), and
which of the two each DLQ topic is read from.

A DLQ topic is read from the broker unless the broker lost records of it: the topic is missing, or a copy in the
database is not where the broker had put it (nothing there, or another event there) although the broker's log of
that partition begins at or before that offset (a record retention deleted is not lost). Then the topic is read
from the database, with the records only the broker holds (written before the copies were kept, or while the
database had no `dlq_records`). `--from-database` reads every topic that way. A copy read from the database shows
as `<topic>[<partition>]@db<id>`: a broker that lost its log gives the old offsets to new records.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import asyncpg

from eventbus.consumer.replay.read import DlqRecord, ReplayError, dlq_prefix
from eventbus.db import database_url_for, plain_url, with_database

_READ = """
SELECT id, dlq_topic, dlq_partition, dlq_offset, record_key, record_value, header_keys, header_values,
       (extract(epoch FROM written_at) * 1000)::bigint AS written_ms
FROM dlq_records
WHERE dlq_topic LIKE $1 || '%' AND ($2::text IS NULL OR dlq_topic = $2) AND ($3::bigint IS NULL OR id = $3)
ORDER BY dlq_topic, dlq_partition, id
"""


def group_dsn(server_url: str | None, group: str) -> str | None:
    """The group's database: `<GROUP>_DATABASE_URL`, else the database named like the group on the server."""
    if server_url:
        return database_url_for(server_url, group, os.environ)
    return os.environ.get(f"{group.upper()}_DATABASE_URL")


def group_of_topic(topic: str) -> str:
    """`dlq.<group>.<source topic>` -> group."""
    return topic.split(".")[1]


async def stored_records(dsn: str, group: str, source_topic: str | None = None,
                         record_id: int | None = None) -> list[DlqRecord] | None:
    """The group's dead letters kept in its database (None: it has no `dlq_records`)."""
    try:
        conn = await asyncpg.connect(plain_url(dsn), timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ReplayError(f"cannot read the dead letters kept in the {group} database ({exc!r}); is it up?") from exc
    try:
        if not await conn.fetchval("SELECT to_regclass('dlq_records') IS NOT NULL"):
            return None
        topic = f"{dlq_prefix(group)}{source_topic}" if source_topic else None
        rows = await conn.fetch(_READ, dlq_prefix(group), topic, record_id)
    finally:
        await conn.close()
    return [DlqRecord(r["dlq_topic"], r["dlq_partition"], -r["id"], r["written_ms"], r["record_key"],
                      r["record_value"], list(zip(r["header_keys"], r["header_values"], strict=True)),
                      stored_offset=r["dlq_offset"]) for r in rows]


async def groups_with_copies(server_url: str) -> list[str]:
    """The databases on the server that keep dead letters: a consuming group's database is named like it."""
    try:
        conn = await asyncpg.connect(plain_url(with_database(server_url, "postgres")), timeout=10)
    except (OSError, asyncpg.PostgresError):
        return []
    try:
        names = [r[0] for r in await conn.fetch("SELECT datname FROM pg_database WHERE NOT datistemplate "
                                                "AND datallowconn ORDER BY datname")]
    finally:
        await conn.close()
    groups = []
    for name in names:
        try:
            conn = await asyncpg.connect(plain_url(with_database(server_url, name)), timeout=5)
        except (OSError, asyncpg.PostgresError):
            continue
        try:
            if await conn.fetchval("SELECT to_regclass('dlq_records') IS NOT NULL") and \
                    await conn.fetchval("SELECT EXISTS (SELECT 1 FROM dlq_records)"):
                groups.append(name)
        finally:
            await conn.close()
    return groups


@dataclass
class Chosen:
    records: list[DlqRecord] = field(default_factory=list)
    #: the topics read from the database, and why
    from_database: dict[str, str] = field(default_factory=dict)


def lost_topics(stored: Iterable[DlqRecord], broker: Iterable[DlqRecord], present: Collection[str],
                starts: Mapping[tuple[str, int], int]) -> dict[str, str]:
    """The DLQ topics of which the broker lost records that the database keeps, and why."""
    on_broker = {(r.topic, r.partition, r.offset): r.event_id for r in broker}
    lost: dict[str, str] = {}
    for r in stored:
        assert r.stored_offset is not None
        if r.topic in lost:
            continue
        if r.topic not in present:
            lost[r.topic] = "the topic is missing on the broker"
            continue
        at = (r.topic, r.partition, r.stored_offset)
        if at in on_broker and on_broker[at] == r.event_id:
            continue
        if starts.get((r.topic, r.partition), 0) <= r.stored_offset:
            lost[r.topic] = f"the broker no longer has {r.topic}[{r.partition}]@{r.stored_offset}"
    return lost


def choose(broker: list[DlqRecord], stored: list[DlqRecord], present: Collection[str],
           starts: Mapping[tuple[str, int], int], *, from_database: bool = False) -> Chosen:
    """The records to list or replay: per topic, the broker's, or the database's when the broker lost some (all
    topics with `from_database`), with the records only the broker holds."""
    stored_topics = {r.topic for r in stored}
    why = ({t: "--from-database" for t in stored_topics} if from_database
           else lost_topics(stored, broker, present, starts))
    copies = {(r.topic, r.partition, r.stored_offset, r.event_id) for r in stored if r.topic in why}
    chosen = Chosen(from_database=why)
    chosen.records = [r for r in stored if r.topic in why] + [
        r for r in broker if r.topic not in why or (r.topic, r.partition, r.offset, r.event_id) not in copies]
    chosen.records.sort(key=lambda r: (r.topic, r.partition, r.from_database, abs(r.offset)))
    return chosen


def notes(chosen: Chosen, stored: Iterable[DlqRecord]) -> list[str]:
    counts: dict[str, int] = {}
    for r in stored:
        counts[r.topic] = counts.get(r.topic, 0) + 1
    return [f"{topic}: {counts.get(topic, 0)} record(s) read from the group's database ({why})"
            for topic, why in sorted(chosen.from_database.items())]
