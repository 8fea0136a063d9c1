"""Bonus's consumer handlers: each applies a run of events in one set-based statement."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from eventbus.consumer.messages import Decoded
from eventbus.consumer.processor import Handler
from services.bonus.domain import OUTCOME_OF_EVENT, CreditRule
from services.contracts import manager_created, task_created

# A later event for the same manager fills in what it carries and keeps what it does not (v2 has no names).
_UPSERT_MANAGERS = """
INSERT INTO managers AS m (id, account_id, first_name, last_name, username)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (id) DO UPDATE SET
    account_id = EXCLUDED.account_id,
    first_name = coalesce(EXCLUDED.first_name, m.first_name),
    last_name = coalesce(EXCLUDED.last_name, m.last_name),
    username = coalesce(EXCLUDED.username, m.username),
    updated_at = now()
"""
_UPSERT_TASKS = """
INSERT INTO tasks (id, creator_id, title, knowledge_area)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
ON CONFLICT (id) DO NOTHING
"""
_CREDIT = """
INSERT INTO ledger (manager_id, task_id, outcome, amount, event_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::uuid[])
ON CONFLICT ON CONSTRAINT ledger_one_credit_per_task_outcome DO NOTHING
"""
_UPSERT_RATINGS = """
INSERT INTO task_ratings (task_id, rating, event_id)
SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::uuid[])
ON CONFLICT (task_id) DO UPDATE SET rating = EXCLUDED.rating, event_id = EXCLUDED.event_id
"""


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _affected(status: str) -> int:
    return int(status.split()[-1])


async def apply_manager_created(conn: asyncpg.Connection, events: list[Decoded]) -> None:
    # one row per manager per statement (ON CONFLICT DO UPDATE cannot touch a row twice), merged in
    # order with the same rule the statement applies across batches: what a later event carries wins
    merged: dict[str, list[str | None]] = {}
    for e in events:
        f = manager_created(e.payload, e.event_version)
        row: list[str | None] = [f.manager_id, f.account_id, f.first_name, f.last_name, f.username]
        earlier = merged.get(f.manager_id)
        if earlier is not None:
            row = [new if new is not None else old for new, old in zip(row, earlier, strict=True)]
        merged[f.manager_id] = row
    await conn.execute(_UPSERT_MANAGERS, *_columns(list(merged.values()), 5))


async def apply_task_created(conn: asyncpg.Connection, events: list[Decoded]) -> int:
    facts = {f.task_id: f for f in (task_created(e.payload, e.event_version) for e in events)}
    rows = [(f.task_id, f.creator_id, f.title, f.knowledge_area) for f in facts.values()]
    return len(events) - _affected(await conn.execute(_UPSERT_TASKS, *_columns(rows, 4)))


def credit_handler(rule: CreditRule) -> Handler:
    async def apply_results(conn: asyncpg.Connection, events: list[Decoded]) -> int:
        rows = []
        for e in events:
            outcome = OUTCOME_OF_EVENT[e.event_name]
            rows.append((e.payload["creator_id"], e.payload["task_id"], outcome, rule.amount(outcome), e.event_id))
        credited = _affected(await conn.execute(_CREDIT, *_columns(rows, 5)))
        return len(events) - credited

    return Handler("TaskCompleted", frozenset({0}), apply_results)


async def apply_task_rating(conn: asyncpg.Connection, events: list[Decoded]) -> None:
    latest = {e.payload["task_id"]: e for e in events}
    rows = [(e.payload["task_id"], e.payload["rating"], e.event_id) for e in latest.values()]
    await conn.execute(_UPSERT_RATINGS, *_columns(rows, 3))


def handlers(rule: CreditRule, manager_created_versions: frozenset[int] = frozenset({0, 1, 2})) -> list[Handler]:
    credit = credit_handler(rule)
    return [
        Handler("ManagerCreated", manager_created_versions, apply_manager_created),
        Handler("TaskCreated", frozenset({0, 1}), apply_task_created),
        credit,
        Handler("TaskFailed", frozenset({0}), credit.apply),
        Handler("TaskRating", frozenset({0}), apply_task_rating),
    ]
