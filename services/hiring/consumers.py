"""Hiring's consumer: replicates tasks from TaskCreated so it can answer for them. The title is kept as
"[Area] Title" in every version (hiring only shows it)."""

from __future__ import annotations

import asyncpg

from eventbus.consumer.messages import Decoded
from eventbus.consumer.processor import Handler
from eventbus.flags.provider import Switches
from services.contracts import task_created

_UPSERT_TASKS = """
INSERT INTO tasks (id, creator_id, title)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[])
ON CONFLICT (id) DO NOTHING
"""


async def apply_task_created(conn: asyncpg.Connection, events: list[Decoded]) -> int:
    facts = {f.task_id: f for f in (task_created(e.payload, e.event_version) for e in events)}
    rows = [(f.task_id, f.creator_id, f.old_title) for f in facts.values()]
    status: str = await conn.execute(_UPSERT_TASKS, *map(list, zip(*rows, strict=True)))
    return len(events) - int(status.split()[-1])


def handlers(flags: Switches) -> list[Handler]:
    return [Handler("TaskCreated", lambda: frozenset(flags.value("hiring.task_created_versions")), apply_task_created)]
