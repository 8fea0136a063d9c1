"""`python -m services.playbooks`: run seed 004's staged migrations against the live system.

  list                    the playbooks, what each needs first, and where each stands
  plan NAME               the steps, what each checks before and after and what it does; nothing changes
  run NAME [--step N] [--to N] [--wait S]
                          run steps until done or until a gate blocks (--step: that one step, which must be
                          next; --to: stop after step N); a killed run resumes where it was
  status [NAME] [--json]  every playbook's state and current step; for a blocked step the failing gate, its
                          evidence and what to do
  rollback NAME [--to N]  undo the done steps (after step N) in reverse order, refused at the first
                          irreversible one

Exit codes: 0 done, 2 refused (wrong order, another run, a playbook it needs), 3 blocked by a gate,
4 failed (an action could not be done), 5 (status) not finished yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from eventbus.playbook.context import Context, Settings
from eventbus.playbook.loader import PlaybookError
from eventbus.playbook.model import Playbook
from eventbus.playbook.runner import REFUSED, Runner, status_code
from eventbus.settings import CommonSettings
from eventbus.stack.restart import request_restart
from eventbus.stack.target import TargetError, resolve


class RunnerSettings(CommonSettings):
    """The runner's own settings: the registry's write token (REGISTRY_TOKEN), the catalog (SCHEMAS_DIR), and
    any database's own URL (BONUS_DATABASE_URL, ...); the servers come from the running stack."""

    registry_token: str = "dev-registry-token"


STATE_MARKS = {"done": "x", "running": ">", "blocked": "!", "failed": "!", "undone": "<", "pending": " "}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.playbooks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="server URL (default: DATABASE_URL, else the running stack's)")
    parser.add_argument("--kafka", help="bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, else the stack's)")
    parser.add_argument("--registry", help="registry URL (default: REGISTRY_URL, else the stack's)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the playbooks and where each stands")
    plan = sub.add_parser("plan", help="the steps and their gates; nothing changes")
    plan.add_argument("name")
    run = sub.add_parser("run", help="run steps until done or blocked")
    run.add_argument("name")
    run.add_argument("--step", type=int, help="run this one step (it must be the next)")
    run.add_argument("--to", type=int, help="stop after this step")
    run.add_argument("--wait", type=float, help="seconds to wait for gates that are not true yet, for every step "
                                                 "(default: each step's own; 0: look once)")
    status = sub.add_parser("status", help="where every playbook stands")
    status.add_argument("name", nargs="?")
    status.add_argument("--json", action="store_true", help="machine-readable")
    rollback = sub.add_parser("rollback", help="undo done steps in reverse order")
    rollback.add_argument("name")
    rollback.add_argument("--to", type=int, help="undo only the steps after this one (then run goes on from there)")
    return parser


def context(args: argparse.Namespace, quiet: bool = False) -> Context:
    target = resolve(database=args.database, kafka=args.kafka, registry=args.registry,
                     flags={"database": "--database", "kafka": "--kafka", "registry": "--registry"})
    own = RunnerSettings()
    settings = Settings(
        database_url=target.need("database"), bootstrap_servers=target.need("kafka"),
        registry_url=target.need("registry"), registry_token=own.registry_token, schemas_dir=own.schemas_dir,
        database_urls={db: url for db in ("management", "hiring", "bonus", "registry", "playbooks")
                       if (url := getattr(own, f"{db}_database_url"))})
    if not quiet:
        print(target.describe("database", "kafka", "registry"), flush=True)
    restarter = None
    if target.stack is not None and target.stack.ready:
        stack = target.stack

        async def restart(name: str) -> int:
            return await asyncio.to_thread(request_restart, stack.data_dir, stack.urls, name, [], 120.0)

        restarter = restart
    return Context(settings, restarter=restarter)


def describe_plan(playbook: Playbook, states: dict[int, str]) -> list[str]:
    lines = [f"{playbook.name}: {playbook.title}", f"  source: {playbook.source}"]
    if playbook.requires:
        lines.append(f"  needs: {', '.join(playbook.requires)} done first")
    if playbook.summary:
        lines.append(f"  {playbook.summary.strip()}")
    for step in playbook.steps:
        mark = STATE_MARKS.get(states.get(step.number, "pending"), "?")
        lines.append(f"[{mark}] {step.number:>2}. {step.title}")
        lines.append(f"       «{step.words}»")
        for label, calls in (("before", step.gates), ("does", step.actions), ("after", step.checks)):
            for call in calls:
                lines.append(f"       {label:<6} {call.describe()}")
        if step.code:
            lines.append(f"       code   {step.code.strip()}")
        if step.note:
            lines.append(f"       note   {step.note}")
        if step.wait:
            lines.append(f"       waits  up to {step.wait:g} s for its gates and checks")
        lines.append("       undo   " + (f"IRREVERSIBLE: {step.irreversible}" if step.irreversible
                                         else "its actions' own undo, in reverse"
                                         + (f", after {', '.join(c.describe() for c in step.undo_gates)}"
                                            if step.undo_gates else "")))
    return lines


def render_status(rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in rows:
        head = f"{r['playbook']:<9} {r['state']:<11} {r['done']:>2}/{r['steps']} steps"
        if r.get("direction") == "rollback":
            head += " (rolling back)"
        if r.get("waiting_for"):
            head += f"  needs {', '.join(r['waiting_for'])} done first"
        current = r.get("current_step")
        if current and r["state"] != "done":
            head += f"  at step {current['number']} ({current['state']}, {current['attempts']} attempts): " \
                    f"{current['title']}"
        lines.append(head)
        if current and current.get("error"):
            lines.append(f"          error: {current['error']}")
        for gate in (current or {}).get("failing", []):
            lines.append(f"          [{gate['verdict']}] {gate['gate']}: {gate['evidence']}")
            if gate.get("fix"):
                lines.append(f"            fix: {gate['fix']}")
    return lines


async def _main(args: argparse.Namespace) -> int:
    from services.playbooks import playbooks
    try:
        books = playbooks()
    except PlaybookError as exc:
        print(f"a playbook file is wrong: {exc}", file=sys.stderr)
        return REFUSED
    if args.command == "plan" and args.name not in books:
        print(f"no playbook {args.name!r}; known: {', '.join(books)}", file=sys.stderr)
        return REFUSED
    quiet = args.command == "status" and args.json
    try:
        ctx = context(args, quiet=quiet)
    except TargetError as exc:
        if args.command == "plan":
            print("\n".join(describe_plan(books[args.name], {})))
            print(f"(state not shown: {exc})")
            return 0
        print(str(exc), file=sys.stderr)
        return REFUSED
    runner = Runner(ctx, books, wait=getattr(args, "wait", None))
    try:
        if args.command in ("list", "status"):
            names = [args.name] if getattr(args, "name", None) else None
            if names and names[0] not in books:
                print(f"no playbook {names[0]!r}; known: {', '.join(books)}", file=sys.stderr)
                return REFUSED
            rows = await runner.status(names)
            if args.command == "list":
                for r in rows:
                    book = books[r["playbook"]]
                    needs = f" (needs {', '.join(book.requires)})" if book.requires else ""
                    print(f"{r['playbook']:<9} {len(book.steps):>2} steps  {r['state']:<11} {book.title}{needs}")
                return 0
            print(json.dumps(rows, indent=2, default=str) if args.json else "\n".join(render_status(rows)))
            return status_code(rows)
        if args.command == "plan":
            from eventbus.playbook import store
            conn = await (await ctx.db("playbooks")).acquire()
            try:
                run = await store.active_run(conn, args.name) or await store.last_run(conn, args.name)
                states = {s.number: s.state for s in await store.steps(conn, run.id)} if run else {}
            finally:
                await (await ctx.db("playbooks")).release(conn)
            print("\n".join(describe_plan(books[args.name], states)))
            return 0
        if args.command == "run":
            return await runner.run(args.name, step=args.step, to=args.to)
        return await runner.rollback(args.name, args.to)
    except KeyError as exc:
        print(str(exc.args[0]), file=sys.stderr)
        return REFUSED
    finally:
        await ctx.close()


def main(argv: list[str] | None = None) -> None:
    sys.exit(asyncio.run(_main(build_parser().parse_args(argv))))
