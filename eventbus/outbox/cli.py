"""`python -m eventbus.outbox.cli status --database management --database hiring`

Prints, per service database: backlog, oldest unpublished age, published in the last minute, the
retained published rows, and each relay with its leases and breaker state (what /metrics shows).

It reads the databases of the running stack (`.data/run/stack.json`, or STACK_DATA_DIR's) and says so in
its first line; --database-url / DATABASE_URL point it at another server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import asyncpg

from eventbus.db import database_url_for, plain_url
from eventbus.outbox.store import OutboxOutdated, status_report
from eventbus.stack.target import TargetError, resolve


async def collect(server_url: str, databases: list[str]) -> dict[str, object]:
    report: dict[str, object] = {}
    for database in databases:
        try:
            conn = await asyncpg.connect(plain_url(database_url_for(server_url, database, os.environ)), timeout=5)
        except (OSError, asyncpg.PostgresError) as exc:
            report[database] = {"error": f"cannot connect: {exc!r}; is the stack running (`make status`)?"}
            continue
        try:
            report[database] = await status_report(conn)
        except OutboxOutdated as exc:
            report[database] = {"error": str(exc)}
        finally:
            await conn.close()
    return report


def render(report: dict[str, object]) -> str:
    lines = []
    for database, body in report.items():
        assert isinstance(body, dict)
        if "error" in body:
            lines.append(f"{database}: {body['error']}")
            continue
        lines.append(f"{database}: backlog {body['backlog']}, oldest unpublished {body['oldest_unpublished_age_s']} s, "
                     f"published {body['published_per_s']}/s over the last minute, "
                     f"{body['retained_published']} published rows retained")
        losses = body.get("broker_losses")
        if losses and losses["last"]:
            last = losses["last"]
            lines.append(f"  the broker lost records it had confirmed {losses['count']} time(s); last: #{last['id']} "
                         f"at {last['detected_at']} ({last['evidence']}), {last['republished']} rows published again")
        for relay in body["relays"]:
            lines.append(f"  relay {relay['instance']}: leases {relay['leases']}, breaker {relay.get('breaker')}, "
                         f"published {relay.get('published_total')}, failures {relay.get('failures_total')}, "
                         f"seen {relay['seen_ago_s']} s ago"
                         + (f", last error: {relay['last_error']}" if relay.get("last_error") else ""))
        if not body["relays"]:
            lines.append("  no relay has reported in")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eventbus.outbox.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="the PostgreSQL server of the service databases (default: "
                                               "DATABASE_URL, else the running stack's)")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="print each outbox's state")
    status.add_argument("--database", action="append", help="a service database with an outbox (repeatable)")
    status.add_argument("--json", action="store_true", help="machine-readable output (the stack line goes to stderr)")
    args = parser.parse_args(argv)
    databases = args.database or ["management", "hiring"]
    target = resolve(database=args.database_url, flags={"database": "--database-url"})
    try:
        server_url = target.need("database")
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(target.describe("database"), file=sys.stderr if args.json else sys.stdout, flush=True)
    report = asyncio.run(collect(server_url, databases))
    print(json.dumps(report, indent=2, default=str) if args.json else render(report))
    sys.exit(1 if any("error" in v for v in report.values() if isinstance(v, dict)) else 0)


if __name__ == "__main__":
    main()
