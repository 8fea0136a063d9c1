"""Bonus's consumer handlers: each applies a run of events in one set-based statement, in the mode the
switches say (COMM-040, COMM-060, COMM-070, US-160, US-170) and with the columns the database has now."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from eventbus.consumer.errors import PoisonEvent
from eventbus.consumer.messages import Decoded
from eventbus.consumer.processor import Handler
from eventbus.control import SchemaState
from eventbus.errors import DependencyUnavailable
from eventbus.flags.provider import Switches
from eventbus.links import Link
from services.bonus.domain import OUTCOME_OF_EVENT, CreditRule, lock_keys
from services.contracts import manager_created, task_created

_TASKS_SPLIT = """
INSERT INTO tasks (id, creator_id, title, knowledge_area)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
ON CONFLICT (id) DO NOTHING
"""
_TASKS_COMBINED = """
INSERT INTO tasks (id, creator_id, title)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[])
ON CONFLICT (id) DO NOTHING
"""
_CREDIT = """
INSERT INTO ledger (manager_id, task_id, outcome, amount, rating, source, event_id)
SELECT m, t, o, a, r, 'event', e FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::smallint[], $6::uuid[])
    AS u(m, t, o, a, r, e)
ON CONFLICT ON CONSTRAINT ledger_one_credit_per_task_outcome DO NOTHING
"""
_SEEN = """
INSERT INTO task_results_seen (event_id, task_id, outcome)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[]) ON CONFLICT DO NOTHING
"""
_LOCK = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k"
_RATINGS_OF = "SELECT task_id::text, rating FROM task_ratings WHERE task_id = ANY($1::uuid[])"
_PENDING = """
INSERT INTO pending_credits (task_id, creator_id, event_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) ON CONFLICT (task_id) DO NOTHING
"""
_UPSERT_RATINGS = """
INSERT INTO task_ratings (task_id, rating, event_id)
SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::uuid[])
ON CONFLICT (task_id) DO UPDATE SET rating = EXCLUDED.rating, event_id = EXCLUDED.event_id
"""
_RESOLVE_PENDING = """
WITH done AS (
    DELETE FROM pending_credits p USING task_ratings r
    WHERE p.task_id = r.task_id AND p.task_id = ANY($1::uuid[])
    RETURNING p.creator_id, p.task_id, r.rating, p.event_id)
INSERT INTO ledger (manager_id, task_id, outcome, amount, rating, source, event_id)
SELECT creator_id, task_id, 'completed', greatest(0, $2::int + $3::int * (rating - $4::int)), rating, 'event', event_id
FROM done
ON CONFLICT ON CONSTRAINT ledger_one_credit_per_task_outcome DO NOTHING
"""


#: task ids per ratings lookup on hiring (its LOOKUP_MAX is 1000)
LOOKUP_CHUNK = 500


def _columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _affected(status: str) -> int:
    return int(status.split()[-1])


@dataclass
class BonusConsumers:
    flags: Switches
    schema: SchemaState
    rule: CreditRule
    hiring: Link
    #: ratings asked of hiring at once (COMM-060 after)
    concurrency: int = 16

    # -- ManagerCreated (COMM-070, US-170) ------------------------------------------------------
    async def apply_manager_created(self, conn: asyncpg.Connection, events: list[Decoded]) -> None:
        if not self.schema.has_table("managers"):
            raise DependencyUnavailable("bonus.managers", "the table is not there yet (COMM-070 step 2)")
        names = self.flags.value("bonus.manager_fields") != "username" and self.schema.has("managers", "first_name")
        columns = ["account_id"] + (["first_name", "last_name"] if names else [])
        if self.schema.has("managers", "username"):
            columns.append("username")
        # one row per manager per statement (ON CONFLICT DO UPDATE cannot touch a row twice), merged in order:
        # what a later event carries wins, what it lacks (v2 has no names) is kept
        merged: dict[str, dict[str, str | None]] = {}
        for e in events:
            f = manager_created(e.payload, e.event_version)
            row = {"account_id": f.account_id, "first_name": f.first_name, "last_name": f.last_name,
                   "username": f.username}
            earlier = merged.get(f.manager_id, {})
            merged[f.manager_id] = {k: v if v is not None else earlier.get(k) for k, v in row.items()}
        updates = ", ".join(f"{c} = coalesce(EXCLUDED.{c}, m.{c})" for c in columns)
        casts = ", ".join(f"${i + 2}::text[]" for i in range(len(columns)))
        sql = (f"INSERT INTO managers AS m (id, {', '.join(columns)}) SELECT * FROM unnest($1::uuid[], {casts}) "
               f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()")
        rows: list[list[str | None]] = [[manager_id, *(values[c] for c in columns)]
                                        for manager_id, values in merged.items()]
        await conn.execute(sql, *_columns(rows, len(columns) + 1))

    # -- TaskCreated (US-160) ------------------------------------------------------------------
    async def apply_task_created(self, conn: asyncpg.Connection, events: list[Decoded]) -> int:
        facts = {f.task_id: f for f in (task_created(e.payload, e.event_version) for e in events)}
        if self.flags.value("bonus.task_area_parsing") and self.schema.has("tasks", "knowledge_area"):
            rows = [(f.task_id, f.creator_id, f.title, f.knowledge_area) for f in facts.values()]
            return len(events) - _affected(await conn.execute(_TASKS_SPLIT, *_columns(rows, 4)))
        combined = [(f.task_id, f.creator_id, f.old_title) for f in facts.values()]
        return len(events) - _affected(await conn.execute(_TASKS_COMBINED, *_columns(combined, 3)))

    # -- TaskCompleted / TaskFailed (COMM-040, COMM-060) --------------------------------------------
    def results_accepted(self) -> frozenset[int]:
        return frozenset() if self.flags.value("bonus.task_results_consumer") == "off" else frozenset({0})

    async def apply_results(self, conn: asyncpg.Connection, events: list[Decoded]) -> int:
        if self.flags.value("bonus.task_results_consumer") == "count":
            if not self.schema.has_table("task_results_seen"):
                raise DependencyUnavailable("bonus.task_results_seen", "the table is not there (COMM-040 step 2)")
            rows = [(e.event_id, e.payload["task_id"], OUTCOME_OF_EVENT[e.event_name]) for e in events]
            await conn.execute(_SEEN, *_columns(rows, 3))
            return 0
        task_ids = [e.payload["task_id"] for e in events]
        await conn.execute(_LOCK, lock_keys(task_ids))  # the TaskRating handler takes the same locks
        ratings = await self._ratings([e for e in events if e.event_name == "TaskCompleted"], conn)
        credits, pending = [], []
        for e in events:
            outcome = OUTCOME_OF_EVENT[e.event_name]
            task_id, creator_id = e.payload["task_id"], e.payload["creator_id"]
            rating = ratings.get(task_id.lower()) if outcome == "completed" else None
            if outcome == "completed" and rating is None:
                pending.append((task_id, creator_id, e.event_id))  # its TaskRating has not arrived yet
                continue
            credits.append((creator_id, task_id, outcome, self.rule.amount(outcome, rating), rating, e.event_id))
        credited = _affected(await conn.execute(_CREDIT, *_columns(credits, 6)))
        if pending:
            await conn.execute(_PENDING, *_columns(pending, 3))
        return len(credits) - credited

    async def _ratings(self, completed: list[Decoded], conn: asyncpg.Connection) -> dict[str, int]:
        """task_id -> rating, for the completions of a batch. From TaskRating events (a missing one waits in
        pending_credits), or asked of hiring in one lookup per batch (a dependency that is down blocks the batch
        with backoff; a task hiring does not know is poison: the batch is isolated and that event dead-lettered)."""
        if not completed:
            return {}
        ids = sorted({e.payload["task_id"] for e in completed})
        if self.flags.value("bonus.rating_source") == "events":
            if not self.schema.has_table("task_ratings"):
                raise DependencyUnavailable("bonus.task_ratings", "ratings come from events but the table is gone")
            rows = await conn.fetch(_RATINGS_OF, ids)  # asyncpg takes uuids as text
            return {r["task_id"]: r["rating"] for r in rows}
        found: dict[str, int] = {}
        for start in range(0, len(ids), LOOKUP_CHUNK):  # one request per batch (hiring takes up to 1000 ids)
            chunk = ids[start:start + LOOKUP_CHUNK]
            response = await self.hiring.request("POST", "/task-ratings/lookup", json={"task_ids": chunk})
            if response.status_code in (404, 405):  # a hiring from before the lookup (a rolling upgrade)
                return await self._ratings_one_by_one(ids)
            if response.status_code != 200:
                raise DependencyUnavailable("hiring", f"the ratings lookup answered {response.status_code}")
            body = response.json()
            if body.get("unknown"):
                raise PoisonEvent(f"hiring does not know task {body['unknown'][0]}")
            for entry in body["ratings"]:
                rating = entry.get("rating")
                if not isinstance(rating, int):
                    raise DependencyUnavailable("hiring", f"task {entry['task_id']} has no rating yet "
                                                          f"({entry.get('status')})")
                found[str(entry["task_id"]).lower()] = rating
        return found

    async def _ratings_one_by_one(self, ids: list[str]) -> dict[str, int]:
        limit = asyncio.Semaphore(self.concurrency)

        async def ask(task_id: str) -> tuple[str, int]:
            async with limit:
                response = await self.hiring.request("GET", f"/tasks/{task_id}/rating")
            if response.status_code == 404:
                raise PoisonEvent(f"hiring does not know task {task_id}")
            rating = response.json().get("rating") if response.status_code == 200 else None
            if not isinstance(rating, int):
                raise DependencyUnavailable("hiring", f"task {task_id} has no rating yet ({response.status_code})")
            return task_id.lower(), rating

        return dict(await asyncio.gather(*(ask(i) for i in ids)))

    # -- TaskRating (COMM-060 before) -------------------------------------------------------------
    def rating_accepted(self) -> frozenset[int]:
        return frozenset({0}) if self.flags.value("bonus.task_rating_consumer") else frozenset()

    async def apply_task_rating(self, conn: asyncpg.Connection, events: list[Decoded]) -> None:
        latest = {e.payload["task_id"]: e for e in events}
        await conn.execute(_LOCK, lock_keys(list(latest)))
        rows = [(task_id, e.payload["rating"], e.event_id) for task_id, e in latest.items()]
        await conn.execute(_UPSERT_RATINGS, *_columns(rows, 3))
        if self.schema.has_table("pending_credits"):
            await conn.execute(_RESOLVE_PENDING, list(latest), self.rule.completed,
                               self.rule.rating_step, self.rule.neutral_rating)

    def handlers(self) -> list[Handler]:
        results = Handler("TaskCompleted", self.results_accepted, self.apply_results)
        return [
            Handler("ManagerCreated", lambda: frozenset(self.flags.value("bonus.manager_created_versions")),
                    self.apply_manager_created),
            Handler("TaskCreated", lambda: frozenset(self.flags.value("bonus.task_created_versions")),
                    self.apply_task_created),
            results,
            Handler("TaskFailed", self.results_accepted, results.apply),
            Handler("TaskRating", self.rating_accepted, self.apply_task_rating),
        ]
