"""`make chaos`: a soak that drives the APIs while it kills, at random and repeatedly, every kind of process,
the broker and the database of a stack started as `make run-bg` starts it; then it reconciles exactly.

Every fault is a SIGKILL (the broker and PostgreSQL included: the broker comes back empty). The harness never
repairs anything itself: the stack's supervisor restarts what died, the relays re-publish what the broker
lost, consumers' dedupe absorbs the repeats. A fault is recovered when every process is healthy again and a
probe (a new task, completed through the APIs) is credited; one not recovered within `--recovery-timeout`
counts as a manual action (the harness then restarts it, to go on). At the end: every acknowledged outcome
credited once with the right amount, every balance equal to its credits, no credit without an acknowledged
outcome, nothing left in any outbox; a table per fault kind; exit 1 on any loss, double or manual action.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventbus.db import plain_url, with_database
from eventbus.settings import REPO_ROOT
from eventbus.stack.ports import free_port
from eventbus.stack.state import StackState, read_state
from services.traffic import Traffic, reconcile

PROCESSES = ("management", "hiring", "bonus", "registry", "management-relay", "hiring-relay", "bonus-worker",
             "hiring-worker")
SERVERS = ("kafka", "postgresql")
#: with --ha (EMBEDDED_PG_HA): the replicated database's nodes by their role at the time of the kill
HA_SERVERS = ("kafka", "postgresql-primary", "postgresql-standby")
PORTS = ("REGISTRY_PORT", "MANAGEMENT_PORT", "HIRING_PORT", "BONUS_PORT", "MANAGEMENT_RELAY_PORT",
         "HIRING_RELAY_PORT", "BONUS_WORKER_PORT", "HIRING_WORKER_PORT", "EMBEDDED_PG_PORT", "EMBEDDED_KAFKA_PORT",
         "EMBEDDED_PG_STANDBY_PORT")


@dataclass
class Fault:
    kind: str
    at: float
    recovered_in: float | None = None
    manual: bool = False


@dataclass
class Stack:
    data_dir: Path
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", *argv], cwd=REPO_ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def state(self) -> StackState:
        state = read_state(self.data_dir)
        if state is None:
            raise RuntimeError(f"the stack in {self.data_dir} is gone")
        return state

    def pid(self, kind: str) -> int | None:
        state = self.state()
        if kind in state.processes:
            return state.processes[kind].pid
        role = kind.partition("postgresql-")[2]
        if role in ("primary", "standby"):  # a node of the replicated database, by its role now
            return next((s.pid for s in state.servers.values() if s.role == role), None)
        return state.servers[kind].pid if kind in state.servers else None


async def healthy(stack: Stack, client: httpx.AsyncClient) -> bool:
    state = stack.state()
    for process in state.processes.values():
        try:
            if (await client.get(f"{process.url}/health", timeout=2)).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


async def probe(urls: dict[str, str], client: httpx.AsyncClient, deadline: float) -> bool:
    """A new manager, a task, its completion, and the credit: the whole path works again."""
    try:
        manager = (await client.post(f"{urls['management']}/managers", json={
            "username": f"probe.{uuid.uuid4().hex[:8]}", "account_id": "chaos"})).json()["manager_id"]
        task = None
        while task is None and time.monotonic() < deadline:
            r = await client.post(f"{urls['management']}/tasks", json={"creator_id": manager, "title": "[Chaos] probe"})
            task = r.json().get("task_id") if r.status_code == 201 else None
        while time.monotonic() < deadline:
            r = await client.post(f"{urls['hiring']}/tasks/{task}/fail", json={"candidate_id": str(uuid.uuid4())})
            if r.status_code in (200, 409):
                break
            await asyncio.sleep(0.2)
        while time.monotonic() < deadline:
            r = await client.get(f"{urls['bonus']}/managers/{manager}/balance")
            if r.status_code == 200 and r.json()["credits"] == 1:
                return True
            await asyncio.sleep(0.2)
    except (httpx.HTTPError, KeyError, ValueError):
        return False
    return False


class Duplicates:
    """What the workers' dedupe skipped, summed over every worker process the run saw: each worker's
    `consumer_duplicates_total` is scraped every second and kept per pid (a kill loses at most its last second)."""

    def __init__(self, stack: Stack, interval: float = 1.0) -> None:
        self.stack = stack
        self.interval = interval
        self.seen: dict[tuple[str, int], float] = {}

    @property
    def total(self) -> int:
        return int(sum(self.seen.values()))

    async def scrape(self, client: httpx.AsyncClient) -> None:
        for name, process in self.stack.state().processes.items():
            if not name.endswith("-worker") or process.pid is None:
                continue
            try:
                text = (await client.get(f"{process.url}/metrics", timeout=2)).text
            except httpx.HTTPError:
                continue
            value = sum(sample.value for family in text_string_to_metric_families(text)
                        for sample in family.samples if sample.name == "consumer_duplicates_total")
            self.seen[(name, process.pid)] = max(value, self.seen.get((name, process.pid), 0.0))

    async def run(self) -> None:
        async with httpx.AsyncClient() as client:
            while True:
                with contextlib.suppress(Exception):  # a stack mid-restart: the next scrape catches up
                    await self.scrape(client)
                await asyncio.sleep(self.interval)


async def broker_losses(stack: Stack) -> dict[str, tuple[int, int]]:
    """Per relaying service: losses declared and rows re-published (`outbox_broker_losses`, durable)."""
    losses = {}
    database_url = stack.state().database_url or ""
    for service in ("management", "hiring"):
        conn = await asyncpg.connect(plain_url(with_database(database_url, service)), timeout=10)
        try:
            row = await conn.fetchrow("SELECT count(*), coalesce(sum(republished), 0) FROM outbox_broker_losses")
            losses[service] = (int(row[0]), int(row[1]))
        finally:
            await conn.close()
    return losses


async def outboxes_empty(stack: Stack) -> int:
    left = 0
    database_url = stack.state().database_url or ""
    for service in ("management", "hiring"):
        conn = await asyncpg.connect(plain_url(with_database(database_url, service)), timeout=10)
        try:
            left += int(await conn.fetchval("SELECT count(*) FROM outbox_pending"))
        finally:
            await conn.close()
    return left


async def soak(stack: Stack, duration: float, rate: float, recovery_timeout: float, seed: int,
               kinds: list[str]) -> int:
    rng = random.Random(seed)
    urls = {n: p.url for n, p in stack.state().processes.items()}
    traffic = Traffic(urls, workers=4, seed=seed, rate=rate)
    traffic.use_usernames()
    await traffic.start()
    faults: list[Fault] = []
    duplicates = Duplicates(stack)
    scraper = asyncio.create_task(duplicates.run())
    started = time.monotonic()
    order: list[str] = []
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            while time.monotonic() - started < duration:
                if not order:
                    order = list(kinds)
                    rng.shuffle(order)
                kind = order.pop()
                pid = stack.pid(kind)
                if pid is None:
                    continue
                fault = Fault(kind, time.monotonic())
                print(f"{fault.at - started:6.1f} s  kill -9 {kind} (pid {pid})", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                faults.append(fault)
                deadline = fault.at + recovery_timeout
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    if stack.pid(kind) not in (None, pid) and await healthy(stack, client) and \
                            await probe(urls, client, deadline):
                        fault.recovered_in = time.monotonic() - fault.at
                        break
                if fault.recovered_in is None:
                    fault.manual = True
                    print(f"         {kind} did not recover in {recovery_timeout:g} s: restarting it by hand",
                          flush=True)
                    stack.run("services.stack", "restart", kind)
                else:
                    print(f"         recovered in {fault.recovered_in:.1f} s "
                          f"({len(traffic.ack.outcomes)} outcomes acknowledged so far)", flush=True)
                await asyncio.sleep(rng.uniform(1, 4))
        finally:
            ack = await traffic.stop()
        for _ in range(120):
            if await outboxes_empty(stack) == 0:
                break
            await asyncio.sleep(1)
    result = await reconcile(urls, ack, timeout=180)
    left = await outboxes_empty(stack)
    async with httpx.AsyncClient() as client:
        await duplicates.scrape(client)
    scraper.cancel()
    code = report(faults, ack.acked_at, result, left)
    losses = await broker_losses(stack)
    print(f"broker losses declared {sum(n for n, _ in losses.values())} "
          f"({', '.join(f'{s} {n}' for s, (n, _) in losses.items())}); rows re-published "
          f"{sum(r for _, r in losses.values())} ({', '.join(f'{s} {r}' for s, (_, r) in losses.items())}); "
          f"events the workers skipped as duplicates {duplicates.total} (every cause: re-published rows, "
          "batches re-read after a worker or relay kill)")
    return code


def report(faults: list[Fault], acked_at: dict[str, float], result: dict[str, Any], left: int) -> int:
    by_kind: dict[str, list[Fault]] = defaultdict(list)
    for f in faults:
        by_kind[f.kind].append(f)
    bad = {"lost": set(result["lost"]), "doubled": set(result["doubled"]),
           "wrong": {w[0] for w in result["wrong_amount"]}}
    print(f"\n{'fault':<18}{'faults':>7}{'lost':>6}{'doubled':>9}{'wrong':>7}{'recovery s median':>19}"
          f"{'max':>6}{'manual':>8}")
    for kind, items in sorted(by_kind.items()):
        windows = [(f.at, f.at + (f.recovered_in or 60)) for f in items]
        in_window = {t for t, at in acked_at.items() if any(a <= at <= b for a, b in windows)}
        times = [f.recovered_in for f in items if f.recovered_in is not None] or [0.0]
        print(f"{kind:<18}{len(items):>7}{len(bad['lost'] & in_window):>6}{len(bad['doubled'] & in_window):>9}"
              f"{len(bad['wrong'] & in_window):>7}{statistics.median(times):>19.1f}{max(times):>6.1f}"
              f"{sum(f.manual for f in items):>8}")
    problems = {k: result[k] for k in ("lost", "doubled", "wrong_amount", "unexpected", "balances_off",
                                       "server_errors") if result[k]}
    manual = sum(f.manual for f in faults)
    print(f"\n{result['acknowledged_outcomes']} acknowledged outcomes of {result['managers']} managers; "
          f"lost {len(result['lost'])}, doubled {len(result['doubled'])}, wrong amounts "
          f"{len(result['wrong_amount'])}, credits without an acknowledged outcome {len(result['unexpected'])}, "
          f"balances off {len(result['balances_off'])}; unpublished outbox rows left {left}; "
          f"manual actions {manual}")
    print(f"answers: {dict(sorted(result['statuses'].items()))}")
    if problems:
        print(f"PROBLEMS: { {k: v[:5] for k, v in problems.items()} }")
    return 1 if problems or manual or left else 0


def start_stack(data_dir: Path, ha: bool = False) -> Stack:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
                                                            "REGISTRY_URL", *PORTS)}
    env |= {"STACK_DATA_DIR": str(data_dir), "STACK_START": "final", **{p: str(free_port()) for p in PORTS},
            "EMBEDDED_PG_HA": "1" if ha else "0"}
    stack = Stack(data_dir, env)
    started = stack.run("services.stack", "run-bg")
    if started.returncode != 0:
        raise SystemExit(f"the stack did not start:\n{started.stdout}{started.stderr}")
    return stack


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600, help="seconds of faults (default 600)")
    parser.add_argument("--rate", type=float, default=20, help="tasks started per second (default 20)")
    parser.add_argument("--recovery-timeout", type=float, default=90, help="a fault not recovered by then "
                                                                          "counts as a manual action")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--faults", help="kinds to kill, comma-separated (default: every process and server; "
                                         f"{','.join(PROCESSES + SERVERS)}, with --ha {','.join(HA_SERVERS)})")
    parser.add_argument("--ha", action="store_true", help="a replicated PostgreSQL (EMBEDDED_PG_HA): kill its "
                                                         "primary (a failover) and its standby")
    parser.add_argument("--keep", action="store_true", help="leave the stack and its data folder running")
    args = parser.parse_args(argv)
    faults = args.faults or ",".join(PROCESSES + (HA_SERVERS if args.ha else SERVERS))
    data_dir = Path(tempfile.mkdtemp(prefix="chaos-"))
    print(f"chaos: a fresh stack in {data_dir} (final state), {args.duration:g} s of faults at {args.rate:g} "
          "tasks/s", flush=True)
    def stopped(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")  # so the stack below is stopped, not orphaned

    signal.signal(signal.SIGTERM, stopped)
    stack = start_stack(data_dir, args.ha)
    try:
        code = asyncio.run(soak(stack, args.duration, args.rate, args.recovery_timeout, args.seed,
                                [k.strip() for k in faults.split(",") if k.strip()]))
    finally:
        if not args.keep:
            stack.run("services.stack", "stop", timeout=120)
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
