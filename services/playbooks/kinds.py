"""The gates and actions that know this system's data: backfills, the managers bonus must know before
COMM-070 goes async, the calls COMM-040's replacement must have served, and US-170's anonymisation."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from eventbus.consumer.dlq import dlq_topic, parking_topic
from eventbus.consumer.replay.read import read_records
from eventbus.db import create_engine
from eventbus.envelope import H_EVENT_NAME, H_EVENT_VERSION, header_value
from eventbus.outbox import OutboxWriter
from eventbus.playbook.actions import ActionFailed, action
from eventbus.playbook.context import Context
from eventbus.playbook.gates import GATES, SNAPSHOT, drained, gate
from eventbus.playbook.verdict import GateResult, failed, passed, unknown
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec, ensure_topics
from services.contracts import split_area_title
from services.management import domain as management_domain
from services.topology import BONUS_GROUP, MANAGERS, ROUTES, TASK_RESULTS

BATCH = 1000
BROKER_DOWN = (KafkaError, OSError, TimeoutError, LookupError)


class Progress:
    """"n of N (x/s, ~t s left)" every few seconds, for backfills."""

    def __init__(self, ctx: Context, what: str, total: int) -> None:
        self.ctx, self.what, self.total = ctx, what, total
        self.started = self.shown = time.monotonic()
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.shown >= 2 or self.done >= self.total:
            self.shown = now
            rate = self.done / max(now - self.started, 1e-6)
            left = max(self.total - self.done, 0)
            self.ctx.say(f"    {self.what}: {self.done} of {self.total} ({rate:.0f}/s"
                         + (f", ~{left / rate:.0f} s left)" if rate and left else ")"))


def _step_outcome(ctx: Context, step: int | None) -> dict[str, Any]:
    return ctx.outcome if step is None or step == ctx.step else ctx.outcomes.get(step, {})


def _flag_change(ctx: Context, step: int | None) -> dict[str, Any]:
    """The set_flag outcome recorded by `step` (this step when None)."""
    actions = _step_outcome(ctx, step).get("actions", {})
    for result in actions.values():
        if "change_id" in result:
            return dict(result)
    return {}


# -- COMM-070: bonus must know every manager, including those created before the producer started ----------
@action("republish_managers")
async def republish_managers(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """ManagerCreated for every manager created before the producer was switched on (the seed's steps forget
    them: bonus would answer 404 for them once it stops asking management). Through the outbox, in batches,
    resumable (a cursor in the step's outcome); a manager sent twice is one upsert in bonus."""
    change = _flag_change(ctx, None)
    if not change:
        raise ActionFailed("republish_managers needs this step's set_flag (management.manager_created_version)")
    version = change["new"]
    cut = datetime.fromisoformat(change["changed_at"])
    pool = await ctx.db("management")
    total = int(await pool.fetchval("SELECT count(*) FROM managers WHERE created_at <= $1", cut))
    cursor = ctx.outcome.get("republish_cursor")
    engine = create_engine(ctx.url_of("management"), pool_size=2)
    schemas = SchemaClient(ctx.settings.registry_url, fallback_dir=ctx.settings.schemas_dir)
    writer = OutboxWriter(producer="management", routes=ROUTES, schemas=schemas)
    progress = Progress(ctx, f"ManagerCreated v{version} for managers created before {cut:%H:%M:%S}", total)
    progress.done = int(ctx.outcome.get("republished", 0))
    try:
        while True:
            rows = await pool.fetch(
                "SELECT * FROM managers WHERE created_at <= $1 AND ($2::text IS NULL OR id::text > $2) "
                "ORDER BY id::text LIMIT $3", cut, cursor, BATCH)
            if not rows:
                break
            async with engine.begin() as conn:
                for row in rows:
                    manager = management_domain.Manager(row["id"], row["account_id"], row.get("first_name"),
                                                        row.get("last_name"), row.get("username"))
                    await writer.add(conn, "ManagerCreated", version,
                                     management_domain.manager_created(manager, version))
            cursor = str(rows[-1]["id"])
            progress.add(len(rows))
            await ctx.record(republish_cursor=cursor, republished=progress.done)
    finally:
        await schemas.aclose()
        await engine.dispose()
    return {"republished": progress.done, "created_before": change["changed_at"]}


@gate("bonus_knows_managers")
async def bonus_knows_managers(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Bonus has its own copy of every manager management has, once everything published is consumed."""
    name = "bonus knows every manager management created"
    flow = await drained(ctx, {"service": "management", "event": "ManagerCreated", "versions": [0, 1, 2],
                               "topic": MANAGERS.name, "groups": [BONUS_GROUP]})
    if not flow.passed:
        return GateResult(name, flow.verdict, f"ManagerCreated still in flight: {flow.evidence}", flow.fix)
    try:
        snapshot = ctx.outcome.get(f"{SNAPSHOT}managers_at")
        management = await ctx.db("management")
        if snapshot is None:
            snapshot = (await management.fetchval("SELECT clock_timestamp()")).isoformat()
            await ctx.record(**{f"{SNAPSHOT}managers_at": snapshot})
        ids = {r["id"] for r in await management.fetch(
            "SELECT id FROM managers WHERE created_at <= $1", datetime.fromisoformat(snapshot))}
        known = {r["id"] for r in await (await ctx.db("bonus")).fetch("SELECT id FROM managers")}
    except asyncpg.UndefinedTableError:
        return failed(name, "bonus has no managers table", "COMM-070 step 2 creates it")
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read the managers ({exc!r})", "are the databases up?")
    missing = ids - known
    if missing:
        shown = ", ".join(str(m) for m in sorted(missing, key=str)[:3])
        return failed(name, f"{len(missing)} of {len(ids)} managers are unknown to bonus (e.g. {shown})",
                      "step 3 publishes the managers created before the producer started: make playbook-rollback "
                      "NAME=comm-070 TO=2, then make playbook-run NAME=comm-070 publishes them again",
                      left=len(missing))
    return passed(name, f"all {len(ids)} managers management had at {snapshot[11:19]} are in bonus's copy")


# -- COMM-040: the replacement has served every call -----------------------------------------------------
@gate("replacement_served")
async def replacement_served(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Every credit made over HTTP since the producer started (step `from_step`) was also seen by the
    counting consumer, once everything published is consumed: "check that everything works", measured."""
    name = "the consumer saw every completion credited over HTTP since the producer started"
    change = _flag_change(ctx, int(args["from_step"]))
    if not change:
        return unknown(name, f"step {args['from_step']} recorded no switch", "run the playbook in order")
    flow = await drained(ctx, {"service": "hiring", "event": "TaskCompleted", "versions": [0],
                               "topic": TASK_RESULTS.name, "groups": [BONUS_GROUP]})
    failed_flow = await GATES["outbox_drained"](ctx, {"service": "hiring", "event": "TaskFailed"})
    if not flow.passed or not failed_flow.passed:
        worst = flow if not flow.passed else failed_flow
        return GateResult(name, worst.verdict, f"results still in flight: {worst.evidence}", worst.fix)
    try:
        bonus = await ctx.db("bonus")
        snapshot = ctx.outcome.get(f"{SNAPSHOT}served_at")
        if snapshot is None:
            snapshot = (await bonus.fetchval("SELECT clock_timestamp()")).isoformat()
            await ctx.record(**{f"{SNAPSHOT}served_at": snapshot})
        row = await bonus.fetchrow(
            "SELECT count(*) AS calls, count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM task_results_seen s "
            "  WHERE s.task_id = l.task_id AND s.outcome = l.outcome)) AS missing FROM ledger l "
            "WHERE l.source = 'http' AND l.created_at > $1 AND l.created_at <= $2",
            datetime.fromisoformat(change["changed_at"]), datetime.fromisoformat(snapshot))
    except asyncpg.UndefinedTableError:
        return failed(name, "bonus has no task_results_seen table", "COMM-040 step 2 creates it")
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read the ledger ({exc!r})", "is bonus's database up?")
    assert row is not None
    if row["calls"] == 0:
        ctx.outcome.pop(f"{SNAPSHOT}served_at", None)  # the next look measures a new period
        return unknown(name, f"no completion was credited over HTTP since the producer started "
                             f"({change['changed_at'][11:19]}): nothing to compare",
                       "drive some completions (make traffic), then run again")
    if row["missing"]:
        return failed(name, f"{row['missing']} of {row['calls']} HTTP credits have no TaskCompleted/TaskFailed seen "
                            "by the consumer", "see the bonus worker's log and the DLQ (make dlq-list)")
    return passed(name, f"{row['calls']} completions credited over HTTP since {change['changed_at'][11:19]}; "
                        f"the consumer saw all {row['calls']}")


# -- US-160: knowledge areas out of bonus's titles ------------------------------------------------------
async def _unsplit(pool: asyncpg.Pool, after: str | None, limit: int) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT id, title FROM tasks WHERE knowledge_area IS NULL AND title LIKE '[%' "
        "AND ($1::text IS NULL OR id::text > $1) ORDER BY id::text LIMIT $2", after, limit))


@action("backfill_task_areas")
async def backfill_task_areas(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Split bonus's stored "[Area] Title" into title + knowledge_area (US-160 step 8), in batches, resumable."""
    pool = await ctx.db("bonus")
    total = int(await pool.fetchval("SELECT count(*) FROM tasks WHERE knowledge_area IS NULL AND title LIKE '[%'"))
    progress = Progress(ctx, "tasks split", total)
    cursor: str | None = None
    changed = 0
    while True:
        rows = await _unsplit(pool, cursor, BATCH)
        if not rows:
            break
        pairs = [(r["id"], *split_area_title(r["title"])) for r in rows]
        split = [(i, area, bare) for i, area, bare in pairs if area]
        if split:
            status = await pool.execute(
                "UPDATE tasks t SET knowledge_area = u.area, title = u.title "
                "FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(id, area, title) "
                "WHERE t.id = u.id AND t.knowledge_area IS NULL",
                [s[0] for s in split], [s[1] for s in split], [s[2] for s in split])
            changed += int(status.split()[-1])
        cursor = str(rows[-1]["id"])
        progress.add(len(rows))
    ctx.say(f"    {changed} tasks split ({total - changed} had no area to split)")
    return {"split": changed, "looked_at": total}


@gate("task_areas_left")
async def task_areas_left(ctx: Context, args: dict[str, Any]) -> GateResult:
    name = "bonus: no task title still holds its area (rows still to fill)"
    try:
        pool = await ctx.db("bonus")
        left, cursor = 0, None
        while rows := await _unsplit(pool, cursor, 5000):
            left += sum(1 for r in rows if split_area_title(r["title"])[0])
            cursor = str(rows[-1]["id"])
    except asyncpg.UndefinedColumnError:
        return failed(name, "bonus.tasks has no knowledge_area column", "step 1 adds it")
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot count ({exc!r})", "is bonus's database up?")
    if left:
        return failed(name, f"{left} rows to fill", "the backfill of this step fills them; run it again", left=left)
    return passed(name, "0 rows to fill")


# -- US-170: usernames for the managers created before ---------------------------------------------------
@action("backfill_usernames")
async def backfill_usernames(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """US-170 step 11: management derives a username for each manager without one (the API's rule); bonus
    copies management's, so both hold the same. Batched, resumable (only NULLs are touched)."""
    management, bonus = await ctx.db("management"), await ctx.db("bonus")
    total = int(await management.fetchval("SELECT count(*) FROM managers WHERE username IS NULL"))
    progress = Progress(ctx, "management usernames", total)
    filled = 0
    while rows := await management.fetch(
            "SELECT id, first_name, last_name FROM managers WHERE username IS NULL LIMIT $1", BATCH):
        names = [management_domain.default_username(r["first_name"] or "", r["last_name"] or "") for r in rows]
        status = await management.execute(
            "UPDATE managers m SET username = u.name FROM unnest($1::uuid[], $2::text[]) AS u(id, name) "
            "WHERE m.id = u.id AND m.username IS NULL", [r["id"] for r in rows], names)
        filled += int(status.split()[-1])
        progress.add(len(rows))
    copied, cursor = 0, None
    total_bonus = int(await bonus.fetchval("SELECT count(*) FROM managers WHERE username IS NULL"))
    progress = Progress(ctx, "bonus usernames (from management)", total_bonus)
    while rows := await bonus.fetch("SELECT id FROM managers WHERE username IS NULL AND ($1::uuid IS NULL OR id > $1) "
                                    "ORDER BY id LIMIT $2", cursor, BATCH):
        ids = [r["id"] for r in rows]
        found = await management.fetch("SELECT id, username FROM managers WHERE id = ANY($1::uuid[])", ids)
        if found:
            status = await bonus.execute(
                "UPDATE managers m SET username = u.name FROM unnest($1::uuid[], $2::text[]) AS u(id, name) "
                "WHERE m.id = u.id AND m.username IS NULL", [f["id"] for f in found], [f["username"] for f in found])
            copied += int(status.split()[-1])
        cursor = ids[-1]
        progress.add(len(rows))
    return {"management_filled": filled, "bonus_copied": copied}


# -- US-170: the names stop being readable ---------------------------------------------------------------
MANAGER_TOPICS = (MANAGERS.name, dlq_topic(BONUS_GROUP, MANAGERS.name), parking_topic(BONUS_GROUP, MANAGERS.name))


async def _named_records(ctx: Context) -> dict[str, int]:
    """Records that still carry names (ManagerCreated v0/v1, or anything not v2) per manager topic."""
    existing = await ctx.topics()
    counts: dict[str, int] = {}
    for topic in MANAGER_TOPICS:
        if topic not in existing:
            continue
        records = await read_records(ctx.settings.bootstrap_servers, [topic], timeout=30)
        counts[topic] = sum(1 for r in records if header_value(r.headers, H_EVENT_NAME) != "ManagerCreated"
                            or header_value(r.headers, H_EVENT_VERSION) != "2")
    return counts


@action("purge_names")
async def purge_names(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Make the names already sent unreadable: delete the published ManagerCreated v0/v1 rows the outbox keeps
    for its retention window, then remove every v0/v1 record from the manager topics. Apache Kafka deletes the
    records before the offsets recorded once v1 was drained (DeleteRecords); a broker without DeleteRecords
    (the embedded Tansu) gets the topics recreated: the management relay holds the topic back (a switch), bonus
    consumes what is there, the topics are deleted and declared again, the bonus worker restarts on the new
    (empty) log, and the relay goes on with what waited in the outbox, in order."""
    management = await ctx.db("management")
    status = await management.execute(
        "DELETE FROM outbox o USING outbox_published p WHERE p.id = o.id "
        "AND o.event_name = 'ManagerCreated' AND o.event_version IN (0, 1)")
    scrubbed = int(status.split()[-1])
    ctx.say(f"    outbox: {scrubbed} published ManagerCreated v0/v1 rows deleted")
    named = await _named_records(ctx)
    if not any(named.values()):
        return {"outbox_rows_deleted": scrubbed, "method": "nothing to purge"}
    cut = {int(p): int(o) for p, o in _step_outcome(ctx, int(args["drained_at_step"])).get(
        f"{SNAPSHOT}drain_offsets:{MANAGERS.name}", {}).items()}
    if cut and await _delete_records(ctx, cut):
        return {"outbox_rows_deleted": scrubbed, "method": "DeleteRecords", "before": cut}
    await _recreate(ctx)
    return {"outbox_rows_deleted": scrubbed, "method": "recreated the topics"}


async def _delete_records(ctx: Context, before: dict[int, int]) -> bool:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.settings.bootstrap_servers, request_timeout_ms=5000)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(MANAGERS.name, p): RecordsToDelete(o) for p, o in before.items()},
                                   timeout_ms=5000)
        ctx.say(f"    {MANAGERS.name}: records before {before} deleted (DeleteRecords)")
        return True
    except Exception as exc:  # Tansu closes the connection: it has no DeleteRecords
        ctx.say(f"    the broker cannot delete records ({type(exc).__name__}); recreating the topics instead")
        return False
    finally:
        await admin.close()


async def _recreate(ctx: Context) -> None:
    from eventbus.flags import store as flag_store
    from eventbus.playbook.actions import spec_of
    spec = spec_of("management.paused_topics")
    management = await ctx.db("management")

    async def pause(on: bool) -> None:
        async with management.acquire() as conn:
            current = {r.name: r for r in (await flag_store.read_all(conn)).values()}[spec.name].value
            value = sorted(set(current) | {MANAGERS.name}) if on else [t for t in current if t != MANAGERS.name]
            await flag_store.set_flag(conn, spec, value, by=str(ctx.outcome.get("runner")),
                                      reason="US-170: recreating the manager topics without names")

    steps = ctx.outcome.setdefault("purge", [])
    if "paused" not in steps:
        await pause(True)
        await ctx.record(purge=[*steps, "paused"])
    for what, call, args in (("relays hold it back", "relays_paused", {"service": "management",
                                                                      "topic": MANAGERS.name}),
                             ("bonus consumed it", "topic_consumed", {"group": BONUS_GROUP, "topic": MANAGERS.name})):
        deadline = time.monotonic() + 120
        while not (result := await GATES[call](ctx, args)).passed:
            if time.monotonic() > deadline:
                raise ActionFailed(f"waiting until {what}: {result.evidence}; {result.fix}")
            ctx.say(f"    waiting until {what}: {result.evidence[:120]}")
            await _sleep(1)
    if "recreated" not in ctx.outcome["purge"]:
        from aiokafka.admin import AIOKafkaAdminClient
        existing = await ctx.topics()
        admin = AIOKafkaAdminClient(bootstrap_servers=ctx.settings.bootstrap_servers)
        await admin.start()
        try:
            gone = [t for t in MANAGER_TOPICS if t in existing]
            await admin.delete_topics(gone)
        finally:
            await admin.close()
        specs = [TopicSpec(t, MANAGERS.partitions, retention_ms=None) for t in MANAGER_TOPICS]
        for _ in range(50):  # the broker forgets a deleted topic asynchronously
            try:
                await ensure_topics(ctx.settings.bootstrap_servers, specs)
                break
            except Exception:
                await _sleep(0.2)
        ctx.say(f"    {', '.join(MANAGER_TOPICS)}: deleted and declared again, empty")
        await ctx.record(purge=[*ctx.outcome["purge"], "recreated"])
    if "restarted" not in ctx.outcome["purge"]:
        if ctx.restarter is None:
            raise ActionFailed("restart every bonus worker now (its offsets on the old topic are gone), then run "
                               "this step again")
        code = await ctx.restarter("bonus-worker")
        if code != 0:
            raise ActionFailed(f"the stack could not restart bonus-worker (exit {code})")
        await ctx.record(purge=[*ctx.outcome["purge"], "restarted"])
    await pause(False)
    await ctx.record(purge=[*ctx.outcome["purge"], "resumed"])


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@gate("names_unreadable")
async def names_unreadable(ctx: Context, args: dict[str, Any]) -> GateResult:
    """No manager name can be read any more: not in the databases, the outbox, the topic or its DLQ."""
    name = "managers' names are unreadable everywhere"
    problems = []
    try:
        for database in ("management", "bonus"):
            pool = await ctx.db(database)
            columns = await pool.fetchval(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'managers' "
                "AND column_name IN ('first_name', 'last_name')")
            if columns:
                problems.append(f"{database}.managers still has name columns")
        rows = await (await ctx.db("management")).fetchval(
            "SELECT count(*) FROM outbox WHERE event_name = 'ManagerCreated' AND event_version IN (0, 1)")
        if rows:
            problems.append(f"the management outbox keeps {rows} ManagerCreated v0/v1 rows")
        named = await _named_records(ctx)
    except BROKER_DOWN as exc:
        return unknown(name, f"cannot read the topics ({exc!r})", "is the broker up?")
    except asyncpg.PostgresError as exc:
        return unknown(name, f"cannot read the databases ({exc!r})", "are they up?")
    problems += [f"{topic}: {n} records with names" for topic, n in named.items() if n]
    if problems:
        return failed(name, "; ".join(problems), "step 19 drops the columns and purges the topics")
    return passed(name, f"no name columns, no v0/v1 in the outbox, and {', '.join(named) or 'no topic'} hold only "
                        "ManagerCreated v2")

