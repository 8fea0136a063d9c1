"""The generic actions: each is idempotent (a resumed step does not do it twice in effect), records what it
did in the step's outcome, and knows its own undo (or has none: the step is then marked irreversible)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from eventbus.flags import store as flag_store
from eventbus.flags.spec import FlagSpec
from eventbus.playbook.context import Context
from eventbus.playbook.gates import schema_file
from eventbus.playbook.migrations import downgrade_one, upgrade_one

Run = Callable[[Context, dict[str, Any]], Awaitable[dict[str, Any]]]
Undo = Callable[[Context, dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any]]]


class ActionFailed(RuntimeError):
    """The action could not be done; the message says why and what to do."""


@dataclass(frozen=True)
class Action:
    run: Run
    undo: Undo | None = None


ACTIONS: dict[str, Action] = {}
#: every flag a playbook may set: name -> spec (the system registers its flags here)
FLAG_SPECS: dict[str, FlagSpec] = {}


def action(name: str, undo: Undo | None = None) -> Callable[[Run], Run]:
    def register(fn: Run) -> Run:
        ACTIONS[name] = Action(fn, undo)
        return fn
    return register


def who(ctx: Context) -> str:
    return str(ctx.outcome.get("runner", "playbook"))


# -- Alembic --------------------------------------------------------------------------------------------
async def _undo_migrate(ctx: Context, args: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    if not outcome.get("applied"):
        return {"undone": False, "why": "this step found it already applied"}
    return {"undone": await downgrade_one(ctx, args["database"], args["revision"])}


@action("migrate", undo=_undo_migrate)
async def migrate(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Apply one Alembic revision to one database (refused if it would drag another playbook's in)."""
    applied = await upgrade_one(ctx, args["database"], args["revision"])
    ctx.say(f"    {args['database']}: {args['revision']} " + ("applied" if applied else "was already applied"))
    return {"applied": applied}


# -- the registry ---------------------------------------------------------------------------------------
def _auth(ctx: Context) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.settings.registry_token}"}


async def _undo_register(ctx: Context, args: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    if not outcome.get("created"):
        return {"undone": False, "why": "it was registered before this step"}
    url = f"{ctx.settings.registry_url}/subjects/{args['event']}/versions/{outcome['version']}"
    response = await ctx.http.delete(url, headers=_auth(ctx))
    if response.status_code not in (200, 404):
        raise ActionFailed(f"the registry refused to delete {args['event']} version {outcome['version']}: "
                           f"HTTP {response.status_code} {response.text[:200]}")
    return {"undone": True}


@action("register", undo=_undo_register)
async def register(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Register schemas/<event>/v<version>.json under the subject <event> (identical content: no change)."""
    event, version = args["event"], int(args["version"])
    body = {"schema": json.dumps(schema_file(ctx, event, version)), "schemaType": "JSON"}
    base = ctx.settings.registry_url
    found = await ctx.http.post(f"{base}/subjects/{event}", json=body)
    if found.status_code == 200:
        ctx.say(f"    {event} v{version}: already registered (id {found.json()['id']})")
        return {"created": False, "id": found.json()["id"], "version": found.json()["version"]}
    response = await ctx.http.post(f"{base}/subjects/{event}/versions", json=body, headers=_auth(ctx))
    if response.status_code != 200:
        raise ActionFailed(f"the registry refused {event} v{version}: HTTP {response.status_code} "
                           f"{response.text[:500]}")
    created = response.json()
    ctx.say(f"    {event} v{version}: registered as id {created['id']} (subject version {created['version']})")
    return {"created": True, "id": created["id"], "version": created["version"]}


@action("soft_delete_schema")
async def soft_delete_schema(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Soft-delete the subject version that holds <event> v<version>: producers and consumers can no longer
    resolve it (the schema id stays readable, as in Confluent's registry)."""
    event, version = args["event"], int(args["version"])
    base = ctx.settings.registry_url
    found = await ctx.http.post(f"{base}/subjects/{event}", json={
        "schema": json.dumps(schema_file(ctx, event, version)), "schemaType": "JSON"})
    if found.status_code == 404:
        ctx.say(f"    {event} v{version}: not registered (already deleted)")
        return {"deleted": False}
    if found.status_code != 200:
        raise ActionFailed(f"registry lookup of {event} v{version}: HTTP {found.status_code} {found.text[:200]}")
    subject_version = found.json()["version"]
    response = await ctx.http.delete(f"{base}/subjects/{event}/versions/{subject_version}", headers=_auth(ctx))
    if response.status_code != 200:
        raise ActionFailed(f"the registry refused to delete {event} version {subject_version}: "
                           f"HTTP {response.status_code} {response.text[:200]}")
    ctx.say(f"    {event} v{version} (subject version {subject_version}): soft-deleted")
    return {"deleted": True, "subject_version": subject_version}


# -- switches -------------------------------------------------------------------------------------------
def spec_of(name: str) -> FlagSpec:
    spec = FLAG_SPECS.get(name)
    if spec is None:
        raise ActionFailed(f"unknown flag {name}; known: {', '.join(sorted(FLAG_SPECS))}")
    return spec


async def _undo_set_flag(ctx: Context, args: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    if "old" not in outcome or not outcome.get("changed", True):
        return {"undone": False, "why": "the flag already had this value"}
    spec = spec_of(args["flag"])
    pool = await ctx.db(spec.service)
    async with pool.acquire() as conn:
        change = await flag_store.set_flag(conn, spec, outcome["old"], by=who(ctx), reason="rollback")
    ctx.say(f"    {spec.name}: {spec.render(change.old)} -> {spec.render(change.new)}")
    return {"undone": change.changed}


@action("set_flag", undo=_undo_set_flag)
async def set_flag(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Set one switch (audited, with the outbox boundary); then record the end offsets of `snapshot` topics."""
    spec = spec_of(args["flag"])
    value = spec.validate(args["value"])
    pool = await ctx.db(spec.service)
    async with pool.acquire() as conn:
        change = await flag_store.set_flag(conn, spec, value, by=who(ctx), reason=str(ctx.outcome.get("reason", "")))
        if not change.changed:
            last = await flag_store.last_change(conn, spec.name)
    if change.changed:
        outcome: dict[str, Any] = {
            "old": change.old, "new": change.new, "changed": True, "change_id": change.change_id,
            "outbox_boundary": change.outbox_boundary, "changed_at": change.changed_at.isoformat()}
    elif last is not None and orjson.loads(last["new_value"]) == value:
        # set before (a resumed step, or by hand): the change that made it so is the cut-over
        outcome = {"old": orjson.loads(last["old_value"]), "new": value, "changed": True, "change_id": last["id"],
                   "outbox_boundary": last["outbox_boundary"], "changed_at": last["changed_at"].isoformat(),
                   "found": True}
    else:
        outcome = {"old": value, "new": value, "changed": False}
    boundary = outcome.get("outbox_boundary")
    ctx.say(f"    {spec.name}: {spec.render(outcome['old'])} -> {spec.render(value)}"
            + (f" (outbox ids above {boundary} are written under it)" if boundary is not None else "")
            + ("" if change.changed else " (already so)"))
    snapshot = {}
    for topic in args.get("snapshot", []):
        snapshot[topic] = {str(p): o for p, o in (await ctx.end_offsets(topic)).items()}
    if snapshot:
        outcome["offsets"] = snapshot
        ctx.say(f"    end offsets at the switch: {snapshot}")
    return outcome


async def _undo_retire(ctx: Context, args: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any]:
    spec = spec_of(args["flag"])
    pool = await ctx.db(spec.service)
    async with pool.acquire() as conn:
        await flag_store.unretire(conn, spec, [spec.validate_one(v) for v in args["values"]], by=who(ctx),
                                  reason="rollback")
    return {"undone": True}


@action("retire", undo=_undo_retire)
async def retire(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Refuse these values of a switch from now on: the old path behind them is removed."""
    spec = spec_of(args["flag"])
    values = [spec.validate_one(v) for v in args["values"]]
    pool = await ctx.db(spec.service)
    async with pool.acquire() as conn:
        retired = await flag_store.retire(conn, spec, values, by=who(ctx), reason=str(ctx.outcome.get("reason", "")))
    ctx.say(f"    {spec.name}: retired {', '.join(spec.render(v) for v in values)} (refused from now on)")
    return {"retired": retired}


# -- processes and topics -------------------------------------------------------------------------------
@action("restart")
async def restart(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Restart a process of the running stack (rolling: it is healthy again before the step goes on)."""
    process = args["process"]
    done = ctx.outcome.setdefault("restarted", [])
    if process in done:
        return {"restarted": process, "again": False}
    if ctx.restarter is None:
        raise ActionFailed(f"restart {process} by hand (e.g. `docker compose restart {process}`), then run the step "
                           "again: no embedded stack runs here to do it")
    ctx.say(f"    restarting {process} ...")
    code = await ctx.restarter(process)
    if code != 0:
        raise ActionFailed(f"the stack could not restart {process} (exit {code}); see `make status`")
    await ctx.record(restarted=[*done, process])
    return {"restarted": process}


@action("delete_topics")
async def delete_topics(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    topics = list(args["topics"])
    existing = await ctx.topics()
    gone = [t for t in topics if t in existing]
    if gone:
        admin = AIOKafkaAdminClient(bootstrap_servers=ctx.settings.bootstrap_servers)
        await admin.start()
        try:
            await admin.delete_topics(gone)
        finally:
            await admin.close()
    ctx.say(f"    deleted {', '.join(gone) or 'nothing (already gone)'}")
    return {"deleted": gone}


@action("await_gate")
async def await_gate(ctx: Context, args: dict[str, Any]) -> dict[str, Any]:
    """Between two actions of one step: wait up to `timeout` s for a gate to pass (the step fails otherwise,
    and the actions after it are not done)."""
    import asyncio
    import time

    from eventbus.playbook.gates import GATES
    kind, gate_args, timeout = args["gate"], dict(args.get("args", {})), float(args.get("timeout", 30))
    deadline = time.monotonic() + timeout
    while True:
        result = await GATES[kind](ctx, gate_args)
        if result.passed:
            ctx.say(f"    [ok  ] {result.gate}: {result.evidence}")
            return {"gate": result.as_dict()}
        if time.monotonic() >= deadline:
            raise ActionFailed(f"{result.gate}: {result.verdict.value} after {timeout:g} s: {result.evidence}"
                               + (f"; fix: {result.fix}" if result.fix else ""))
        await asyncio.sleep(0.5)
