"""The generic gates: each reads the live system and answers pass / fail / cannot tell with its evidence.

A gate never passes on missing data: no live instance, an unreachable registry or broker, a stale heartbeat
all answer "cannot tell", with what to do.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka.errors import KafkaError

from eventbus.consumer.dlq import dlq_topic
from eventbus.consumer.replay.read import read_records
from eventbus.playbook.context import Context
from eventbus.playbook.verdict import GateResult, failed, passed, unknown

GateFn = Callable[[Context, dict[str, Any]], Awaitable[GateResult]]
GATES: dict[str, GateFn] = {}
#: step-outcome keys a gate records for the length of one attempt of the step (a snapshot it measures
#: against while it waits); the next attempt starts without them
SNAPSHOT = "gate:"
BROKER_DOWN = (KafkaError, OSError, TimeoutError, LookupError)


def gate(name: str) -> Callable[[GateFn], GateFn]:
    def register(fn: GateFn) -> GateFn:
        GATES[name] = fn
        return fn
    return register


# -- the registry ---------------------------------------------------------------------------------------
def schema_file(ctx: Context, event: str, version: int) -> Any:
    return json.loads((ctx.settings.schemas_dir / event / f"v{version}.json").read_text())


def canonical(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@gate("registry_has")
async def registry_has(ctx: Context, args: dict[str, Any]) -> GateResult:
    """The registry holds `event` v`version` with the content of schemas/<event>/v<version>.json."""
    event, version = args["event"], int(args["version"])
    name = f"registry holds {event} v{version}"
    url = f"{ctx.settings.registry_url}/catalog/{event}/{version}"
    try:
        response = await ctx.http.get(url)
    except httpx.HTTPError as exc:
        return unknown(name, f"the registry did not answer ({type(exc).__name__} at {url})",
                       "start the registry (make status shows it), then run again")
    if response.status_code == 404:
        return failed(name, f"{event} v{version} is not registered", args.get("fix", "register it first"))
    if response.status_code != 200:
        return unknown(name, f"the registry answered HTTP {response.status_code}", "see the registry's log")
    body = response.json()
    if canonical(json.loads(body["schema"])) != canonical(schema_file(ctx, event, version)):
        return failed(name, f"{event} v{version} is registered (id {body['id']}) with other content than "
                            f"schemas/{event}/v{version}.json", "register the catalog's version under a new number")
    return passed(name, f"{event} v{version} is registered as schema id {body['id']}, same content as "
                        f"schemas/{event}/v{version}.json", schema_id=body["id"])


@gate("registry_compatible")
async def registry_compatible(ctx: Context, args: dict[str, Any]) -> GateResult:
    """schemas/<event>/v<version>.json is compatible with the subject's versions under its mode."""
    event, version = args["event"], int(args["version"])
    name = f"{event} v{version} is compatible under the subject's mode"
    url = f"{ctx.settings.registry_url}/compatibility/subjects/{event}/versions?verbose=true"
    try:
        response = await ctx.http.post(url, json={"schema": json.dumps(schema_file(ctx, event, version)),
                                                  "schemaType": "JSON"})
    except httpx.HTTPError as exc:
        return unknown(name, f"the registry did not answer ({type(exc).__name__})", "start the registry")
    if response.status_code == 404:
        return passed(name, f"{event} has no version yet: nothing to be compatible with")
    if response.status_code != 200:
        return unknown(name, f"the registry answered HTTP {response.status_code}: {response.text[:200]}",
                       "see the registry's log")
    body = response.json()
    mode = body.get("mode", "?")
    if body.get("is_compatible"):
        return passed(name, f"compatible with versions {body.get('checked_versions', '?')} under {mode}")
    reasons = "; ".join(body.get("messages", []))[:600]
    return failed(name, f"incompatible under {mode}: {reasons}", "change the schema or the subject's mode")


# -- what each live process applies (its heartbeat) ---------------------------------------------------------
@dataclass(frozen=True)
class Instance:
    instance_id: str
    role: str
    age: float
    stopped: bool
    report: dict[str, Any]

    def label(self) -> str:
        return f"{self.instance_id} (seen {self.age:.1f} s ago)"


async def instances(ctx: Context, database: str, role: str | None) -> list[Instance]:
    pool = await ctx.db(database)
    rows = await pool.fetch(
        "SELECT instance_id, role, stopped_at IS NOT NULL AS stopped, report, "
        "extract(epoch FROM clock_timestamp() - last_seen)::float8 AS age FROM instances "
        "WHERE ($1::text IS NULL OR role = $1) ORDER BY instance_id", role)
    return [Instance(r["instance_id"], r["role"], r["age"], r["stopped"], orjson.loads(r["report"])) for r in rows]


async def every_instance(ctx: Context, name: str, database: str, role: str | None, what: str,
                         holds: Callable[[dict[str, Any]], str | None], fix: str) -> GateResult:
    """`holds(report)` is None when the instance satisfies the gate, else why not. Live instances decide;
    stale ones (no heartbeat lately, not stopped) answer cannot tell unless their last word satisfies it;
    dead ones are named and not counted."""
    try:
        found = await instances(ctx, database, role)
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read {database}'s instances ({exc!r})", "is its database up?")
    live = [i for i in found if not i.stopped and i.age <= ctx.settings.live_within]
    stale = [i for i in found if not i.stopped and ctx.settings.live_within < i.age <= ctx.settings.dead_after]
    dead = [i for i in found if i.stopped or i.age > ctx.settings.dead_after]
    bad = [(i, why) for i in live for why in [holds(i.report)] if why]
    stale_bad = [(i, why) for i in stale for why in [holds(i.report)] if why]
    kind = {"api": "APIs", "worker": "workers", "relay": "relays"}.get(role or "", "processes")
    evidence = [f"{len(live) - len(bad)} of {len(live)} live {database} {kind} {what}"]
    evidence += [f"{i.label()}: {why}" for i, why in bad]
    if stale:
        evidence.append("stale: " + ", ".join(i.label() + (f" ({why})" if why else " (its last report agrees)")
                                              for i in stale for why in [holds(i.report)]))
    if dead:
        evidence.append(f"dead or stopped, not counted: {', '.join(i.instance_id for i in dead[:5])}"
                        + (f" and {len(dead) - 5} more" if len(dead) > 5 else ""))
    text = "; ".join(evidence)
    if bad:
        return failed(name, text, fix)
    if stale_bad:
        return unknown(name, text, "a stale instance may still run the old way: wait for its heartbeat or stop it")
    if not live:
        return unknown(name, text, f"no live {database} {kind} report in: is it running (make status)?")
    return passed(name, text, live=[i.instance_id for i in live])


@gate("instances_accept")
async def instances_accept(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Every live worker of `service` accepts `event` in each of `versions` (or in none of `not_versions`)."""
    event = args["event"]
    want = set(args.get("versions", []))
    refuse = set(args.get("not_versions", []))

    def holds(report: dict[str, Any]) -> str | None:
        accepts = set(report.get("accepts", {}).get(event, []))
        if not want <= accepts:
            return f"accepts {event} {sorted(accepts)}, not {sorted(want - accepts)}"
        if accepts & refuse:
            return f"still accepts {event} {sorted(accepts & refuse)}"
        return None

    parts = ([f"accept {event} {sorted(want)}"] if want else []) + ([f"accept no {event} {sorted(refuse)}"]
                                                                   if refuse else [])
    what = " and ".join(parts)
    return await every_instance(ctx, f"every live {args['service']} worker: {what.strip()}", args["service"],
                                "worker", what.strip(), holds, args.get("fix", "switch the consumers first"))


@gate("instances_apply")
async def instances_apply(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Every live process of `service` (of `role`, if given) applies these flag values."""
    flags: dict[str, Any] = args["flags"]

    def holds(report: dict[str, Any]) -> str | None:
        seen = report.get("flags", {})
        wrong = {k: seen.get(k, "(unknown)") for k, v in flags.items() if seen.get(k) != v}
        return f"applies {wrong}" if wrong else None

    shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in flags.items())
    return await every_instance(ctx, f"every live {args['service']} process applies {shown}", args["service"],
                                args.get("role"), f"apply {shown}", holds,
                                args.get("fix", "a process that does not is stale or runs another build"))


@gate("instances_capable")
async def instances_capable(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Every live process of `service` (of `role`) has `capability` in its build (a "code step")."""
    capability = args["capability"]

    def holds(report: dict[str, Any]) -> str | None:
        return None if capability in report.get("capabilities", []) else "its build lacks it"

    return await every_instance(ctx, f"every live {args['service']} {args.get('role', 'process')} has "
                                     f"{capability}", args["service"], args.get("role"), f"have {capability}",
                                holds, "deploy the build that has it (a rolling restart)")


@gate("instances_consume_not")
async def instances_consume_not(ctx: Context, args: dict[str, Any]) -> GateResult:
    topic = args["topic"]

    def holds(report: dict[str, Any]) -> str | None:
        return "still subscribed" if topic in report.get("consumes", []) else None

    return await every_instance(ctx, f"no live {args['service']} worker consumes {topic}", args["service"],
                                "worker", f"do not consume {topic}", holds, "restart the workers (this step does)")


@gate("relays_paused")
async def relays_paused(ctx: Context, args: dict[str, Any]) -> GateResult:
    topic, paused = args["topic"], bool(args.get("paused", True))

    def holds(report: dict[str, Any]) -> str | None:
        now = topic in report.get("relay", {}).get("paused_topics", [])
        return None if now == paused else ("still publishes it" if paused else "still holds it back")

    state = "hold back" if paused else "publish"
    return await every_instance(ctx, f"every live {args['service']} relay {state}s {topic}", args["service"],
                                "relay", f"{state} {topic}", holds, "wait for the relays' next round")


# -- what is still in flight -------------------------------------------------------------------------------
@gate("outbox_drained")
async def outbox_drained(ctx: Context, args: dict[str, Any]) -> GateResult:
    """No unpublished rows of `event` (of `versions`, if given) in `service`'s outbox."""
    event, versions = args["event"], args.get("versions")
    label = f"{event}" + (f" v{'/v'.join(map(str, versions))}" if versions else "")
    name = f"no unpublished {label} in the {args['service']} outbox"
    try:
        pool = await ctx.db(args["service"])
        row = await pool.fetchrow(
            "SELECT count(*) AS n, coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8 AS age "
            "FROM outbox_pending p JOIN outbox o ON o.id = p.id WHERE event_name = $1 "
            "AND ($2::int[] IS NULL OR event_version = ANY($2::int[]))", event, versions)
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read the outbox ({exc!r})", "is the database up?")
    assert row is not None
    if row["n"]:
        return failed(name, f"{row['n']} unpublished, the oldest {row['age']:.1f} s old",
                      f"the {args['service']} relay publishes them (make outbox-status); wait", unpublished=row["n"])
    return passed(name, f"0 unpublished {label} rows")


async def lag(ctx: Context, group: str, topic: str, targets: dict[int, int]) -> tuple[dict[int, int], int]:
    committed = await ctx.committed(group, topic)
    behind = {p: target - (committed.get(p) or 0) for p, target in targets.items() if (committed.get(p) or 0) < target}
    return behind, sum(behind.values())


@gate("drained")
async def drained(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Nothing of `event` `versions` is in flight: none unpublished in `service`'s outbox, and every group in
    `groups` has committed past the end of `topic` as it was once the outbox had no such row (recorded in the
    step's outcome the first time, so the target does not move with new traffic)."""
    event, topic, groups = args["event"], args["topic"], list(args["groups"])
    name = f"every {event} v{'/v'.join(map(str, args['versions']))} consumed by {', '.join(groups)}"
    outbox = await outbox_drained(ctx, {"service": args["service"], "event": event, "versions": args["versions"]})
    if not outbox.passed:
        return GateResult(name, outbox.verdict, outbox.evidence, outbox.fix)
    key = f"{SNAPSHOT}drain_offsets:{topic}"
    try:
        if key not in ctx.outcome:
            await ctx.record(**{key: {str(p): o for p, o in (await ctx.end_offsets(topic)).items()}})
        targets = {int(p): int(o) for p, o in ctx.outcome[key].items()}
        behind = {group: await lag(ctx, group, topic, targets) for group in groups}
    except BROKER_DOWN as exc:
        return unknown(name, f"cannot read offsets of {topic} ({exc!r})", "is the broker up?")
    late = {g: total for g, (_, total) in behind.items() if total}
    evidence = (f"outbox: 0 unpublished; {topic} ends at {targets} (recorded once the outbox was drained); "
                + "; ".join(f"{g}: {total} records behind {per}" if total else f"{g}: committed past it"
                            for g, (per, total) in behind.items()))
    if late:
        return failed(name, evidence, "the consumers are still working through them; wait (a dead worker's "
                                      "partitions move to another after the session timeout)", behind=late)
    return passed(name, evidence)


@gate("topic_consumed")
async def topic_consumed(ctx: Context, args: dict[str, Any]) -> GateResult:
    """`group` has committed up to the current end of `topic`: it holds no unconsumed record."""
    topic, group = args["topic"], args["group"]
    name = f"{group} has consumed all of {topic}"
    try:
        if topic not in await ctx.topics():
            return passed(name, f"{topic} does not exist")
        ends = await ctx.end_offsets(topic)
        behind, total = await lag(ctx, group, topic, ends)
    except BROKER_DOWN as exc:
        return unknown(name, f"cannot read offsets ({exc!r})", "is the broker up?")
    if total:
        return failed(name, f"{total} unconsumed records {behind} (ends {ends})", "wait for the consumer")
    return passed(name, f"committed = end on every partition {ends}")


@gate("no_new_dlq")
async def no_new_dlq(ctx: Context, args: dict[str, Any]) -> GateResult:
    """No record reached `group`'s DLQ for the `topics` since this run started."""
    group, topics = args["group"], list(args["topics"])
    name = f"no new DLQ records of {group} for {', '.join(topics)} since the run started"
    since = ctx.run_started_at
    if since is None:
        return unknown(name, "the run's start is not known", "run through `make playbook-run`")
    since_ms = int(since.astimezone(UTC).timestamp() * 1000)
    try:
        existing = await ctx.topics()
        dlqs = [dlq_topic(group, t) for t in topics if dlq_topic(group, t) in existing]
        records = await read_records(ctx.settings.bootstrap_servers, dlqs, timeout=20)
    except BROKER_DOWN as exc:
        return unknown(name, f"cannot read the DLQ topics ({exc!r})", "is the broker up?")
    new = [r for r in records if (r.timestamp_ms or 0) >= since_ms]
    if new:
        shown = "; ".join(f"{r.ref}: {r.error_class}" for r in new[:3])
        return failed(name, f"{len(new)} new: {shown}", f"see `make dlq-list ARGS='--group {group}'`; fix the cause, "
                                                        "replay them, then run again")
    return passed(name, f"0 new records in {', '.join(dlqs) or 'no DLQ topic'} ({len(records)} older)")


# -- databases ------------------------------------------------------------------------------------------
@gate("sql_zero")
async def sql_zero(ctx: Context, args: dict[str, Any]) -> GateResult:
    """`query` (a count) on `database` answers 0: e.g. "rows still to fill"."""
    name = args["what"]
    try:
        pool = await ctx.db(args["database"])
        count = int(await pool.fetchval(args["query"]))
    except asyncpg.UndefinedTableError as exc:
        if args.get("missing_table_passes"):
            return passed(name, f"the table is gone ({exc.args[0]})")
        return unknown(name, f"{exc!r}", args.get("fix", ""))
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot count ({exc!r})", "is the database up?")
    if count:
        return failed(name, f"{count} left", args.get("fix", ""), left=count)
    return passed(name, "0 left")


@gate("revision_applied")
async def revision_applied(ctx: Context, args: dict[str, Any]) -> GateResult:
    from eventbus.playbook.migrations import applied_revisions
    database, revision = args["database"], args["revision"]
    name = f"{database} has revision {revision}"
    try:
        applied = await applied_revisions(ctx, database)
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read alembic_version ({exc!r})", "is the database up?")
    if revision in applied:
        return passed(name, f"applied (heads {sorted(applied.heads)})")
    return failed(name, f"not applied (heads {sorted(applied.heads)})", args.get("fix", "its step applies it"))


@gate("flag_is")
async def flag_is(ctx: Context, args: dict[str, Any]) -> GateResult:
    flag, value = args["flag"], args["value"]
    name = f"{flag} is {value}"
    try:
        pool = await ctx.db(flag.split(".", 1)[0])
        raw = await pool.fetchval("SELECT value FROM flags WHERE name = $1", flag)
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read the flag ({exc!r})", "is the database up?")
    current = orjson.loads(raw) if raw is not None else None
    if raw is not None and current == value:
        return passed(name, f"{flag} = {current}")
    return failed(name, f"{flag} = {current}", args.get("fix", f"its step sets {flag}"))


@gate("topic_absent")
async def topic_absent(ctx: Context, args: dict[str, Any]) -> GateResult:
    topic = args["topic"]
    try:
        present = topic in await ctx.topics()
    except BROKER_DOWN as exc:
        return unknown(f"{topic} is deleted", f"cannot list topics ({exc!r})", "is the broker up?")
    return (failed(f"{topic} is deleted", f"{topic} exists", "its step deletes it") if present
            else passed(f"{topic} is deleted", f"{topic} is not on the broker"))


@gate("link_quiet")
async def link_quiet(ctx: Context, args: dict[str, Any]) -> GateResult:
    """No live `service` process called `link` during `window` seconds (the old path is unused)."""
    service, link, window = args["service"], args["link"], float(args.get("window", 3.0))
    name = f"no {service} process calls {link} (observed {window:g} s)"

    async def calls() -> dict[str, int]:
        return {i.instance_id: sum(v for k, v in i.report.get("links", {}).get(link, {}).items()
                                   if k in ("ok", "failed", "rejected"))
                for i in await instances(ctx, service, None) if not i.stopped and i.age <= ctx.settings.live_within}

    try:
        before = await calls()
        await asyncio.sleep(window)
        after = await calls()
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read instances ({exc!r})", "is the database up?")
    if not after:
        return unknown(name, f"no live {service} process reports in", "is it running?")
    moved = {i: after[i] - before.get(i, after[i]) for i in after if after[i] != before.get(i, after[i])}
    if moved:
        return failed(name, f"calls made in the window: {moved}", "something still takes the old path")
    return passed(name, f"{len(after)} live processes made 0 calls to {link} in {window:g} s")


@gate("instances_see_revision")
async def instances_see_revision(ctx: Context, args: dict[str, Any]) -> GateResult:
    """Every live process of `service` runs on a schema that has `revision` ("deploy with the DB changes":
    this build serves every stage, so a deploy is every process having re-read its schema)."""
    from eventbus.playbook.migrations import ancestors
    database, revision = args["service"], args["revision"]

    def holds(report: dict[str, Any]) -> str | None:
        heads = list(report.get("schema_revisions", []))
        return None if revision in ancestors(database, heads) else f"sees {heads}"

    return await every_instance(ctx, f"every live {database} process sees revision {revision}", database,
                                args.get("role"), f"see {revision}", holds,
                                "a process re-reads its schema within seconds; one that does not is stale")


@gate("link_healthy")
async def link_healthy(ctx: Context, args: dict[str, Any]) -> GateResult:
    """The new synchronous path works: live `service` processes called `link` successfully and no breaker of
    theirs on it is open ("when the new logic works", measured)."""
    service, link = args["service"], args["link"]
    name = f"{service} -> {link} works"
    try:
        found = [i for i in await instances(ctx, service, args.get("role")) if not i.stopped
                 and i.age <= ctx.settings.live_within]
    except (OSError, asyncpg.PostgresError) as exc:
        return unknown(name, f"cannot read instances ({exc!r})", "is the database up?")
    stats = {i.instance_id: i.report.get("links", {}).get(link, {}) for i in found}
    ok = sum(int(s.get("ok", 0)) for s in stats.values())
    open_ = [i for i, s in stats.items() if s.get("breaker", "closed") != "closed"]
    evidence = f"{ok} successful calls from {len(found)} live processes; breakers: " + ", ".join(
        f"{i.split('@')[0]}={s.get('breaker', '?')}" for i, s in stats.items())
    if open_:
        return failed(name, evidence, f"{link} fails for {', '.join(open_)}: is it up?")
    if not found or ok == 0:
        return unknown(name, evidence, "no successful call yet: drive some traffic (make traffic), then run again")
    return passed(name, evidence)
