"""The operator's side of the switches: list them with their values, since when and by whom; set one.

`set` refuses an unknown name or a value of the wrong type with the allowed values, and a retired value
with the reason; every change is audited (who, when, old, new, reason) and reaches every process within
about a second. A switch a playbook owns is better moved by its playbook, which gates it.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson

from eventbus.db import plain_url, with_database
from eventbus.flags import store
from eventbus.flags.spec import FlagError, FlagSpec
from eventbus.stack.target import TargetError, resolve


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return f"operator@{socket.gethostname()}"


async def _rows(server: str, specs: Sequence[FlagSpec]) -> list[dict[str, Any]]:
    rows = []
    for service in dict.fromkeys(s.service for s in specs):
        conn = await asyncpg.connect(plain_url(with_database(server, service)), timeout=10)
        try:
            stored = await store.read_all(conn)
            seen = await conn.fetch("SELECT report->'flags' AS flags, extract(epoch FROM clock_timestamp() - "
                                    "last_seen)::float8 AS age FROM instances WHERE stopped_at IS NULL")
        finally:
            await conn.close()
        live = [orjson.loads(r["flags"]) for r in seen if r["age"] <= 3 and r["flags"]]
        for spec in (s for s in specs if s.service == service):
            row = stored.get(spec.name)
            value = row.value if row else spec.initial()
            applied = sum(1 for flags in live if flags.get(spec.name) == value)
            rows.append({"name": spec.name, "value": spec.render(value), "since": row.changed_at.isoformat()
                         if row else None, "by": row.changed_by if row else "(never set)",
                         "reason": row.reason if row else "", "allowed": spec.allowed_text(),
                         "retired": [spec.render(v) for v in row.retired] if row else [],
                         "applied_by": f"{applied} of {len(live)} live processes", "description": spec.description})
    return rows


async def _set(server: str, spec: FlagSpec, text: str, reason: str) -> int:
    value = spec.parse(text)
    conn = await asyncpg.connect(plain_url(with_database(server, spec.service)), timeout=10)
    try:
        change = await store.set_flag(conn, spec, value, by=_who(), reason=reason)
    finally:
        await conn.close()
    if not change.changed:
        print(f"{spec.name} is already {spec.render(value)}")
        return 0
    boundary = "" if change.outbox_boundary is None else f"; outbox ids above {change.outbox_boundary} follow it"
    print(f"{spec.name}: {spec.render(change.old)} -> {spec.render(change.new)} (change {change.change_id} at "
          f"{change.changed_at:%H:%M:%S}{boundary}); every process applies it within about a second")
    return 0


def main(specs: Sequence[FlagSpec], argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.flagctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="server URL (default: DATABASE_URL, else the running stack's)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="every switch: value, since when, by whom, allowed values")
    listing.add_argument("--json", action="store_true")
    setting = sub.add_parser("set", help="set one switch (audited)")
    setting.add_argument("name", help="<service>.<flag>, e.g. bonus.manager_source")
    setting.add_argument("value", help="the new value (off/null for none, a,b for a set)")
    setting.add_argument("--reason", required=True, help="why (recorded in the audit trail)")
    args = parser.parse_args(argv)
    by_name = {s.name: s for s in specs}
    try:
        target = resolve(database=args.database, flags={"database": "--database"})
        server = target.need("database")
        if not (args.command == "list" and args.json):
            print(target.describe("database"), flush=True)
        if args.command == "list":
            rows = asyncio.run(_rows(server, specs))
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for r in rows:
                    print(f"{r['name']:<38} {r['value']:<16} since {(r['since'] or '-')[:19]:<19} by {r['by']}"
                          f"  [{r['applied_by']}]")
                    print(f"{'':<38} allowed: {r['allowed']}" + (f"; retired: {', '.join(r['retired'])}"
                                                                if r["retired"] else ""))
            return 0
        spec = by_name.get(args.name)
        if spec is None:
            print(f"unknown switch {args.name!r}; known: {', '.join(sorted(by_name))}", file=sys.stderr)
            return 2
        if not args.reason.strip():
            print("give a reason (REASON=...): it is recorded with the change", file=sys.stderr)
            return 2
        return asyncio.run(_set(server, spec, args.value, args.reason))
    except FlagError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except TargetError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cannot reach the database ({exc!r}); is the stack running (make status)?", file=sys.stderr)
        return 1
