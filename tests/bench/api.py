"""`make bench-api`: how many writes a second the APIs take, against what the database commits in the same run.

- **ceiling:** single-row commits/s straight into PostgreSQL (asyncpg, one INSERT per transaction, as many
  connections as the load has). Every API write is one such transaction (a row and its outbox row), so the
  ceiling bounds it.
- **create-task** (`POST /tasks` on management) and **complete** (`POST /tasks/{id}/complete` on hiring, each
  request a task of its own seeded into hiring's table) through uvicorn, with 1..N API processes. The load
  comes from processes of raw asyncio keep-alive connections on this machine, spread over the API processes.
- **framework:** the same load on `tests.bench.api_noop` (uvicorn + FastAPI, the body parsed, no database): what
  one API process could answer if a write cost nothing; a write route's rate over it is the framework's share.
- **checks** (they fail the run): every 2xx wrote its row and its outbox row, no other status, no socket error.
- Speed goals are reported: write routes >= 0.5 of the ceiling; the table says how many API processes reach it.

    python -m tests.bench.api [--quick] [--seconds S] [--connections C] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import asyncpg
import httpx

from eventbus.db import ensure_database, plain_url, with_database
from eventbus.settings import REPO_ROOT
from services import stages
from tests.bench.common import Connection, correctness_line, say, stack
from tests.waiting import free_port

GOAL = 0.5


@dataclass
class Load:
    requests: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


@dataclass
class Row:
    route: str
    processes: int
    load: Load
    ceiling: float

    @property
    def ratio(self) -> float:
        return self.load.rate / self.ceiling if self.ceiling else 0.0


# -- the load: raw asyncio keep-alive connections (tests.bench.common.Connection), each request built by its route --
def _request(route: str, item: str) -> tuple[str, dict[str, object]]:
    if route == "create-task":
        return "/tasks", {"creator_id": item, "title": "[Bench] a task"}
    return f"/tasks/{item}/complete", {"candidate_id": str(uuid.uuid4()), "rating": 4}


async def _connection(route: str, port: int, items: Iterator[str], measure_from: float, stop_at: float,
                      load: Load) -> None:
    conn = Connection(port)
    try:
        while (started := time.perf_counter()) < stop_at:
            item = next(items, None)
            if item is None:
                return
            status, _ = await conn.post(*_request(route, item))
            if started >= measure_from:
                load.latencies.append(time.perf_counter() - started)
                load.statuses[status] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        load.errors += 1
    finally:
        await conn.close()


def generator(route: str, ports: list[int], items: list[str], connections: int, measure_from_wall: float,
              seconds: float) -> tuple[list[float], dict[int, int], int]:
    """One load process: `connections` connections spread over `ports`, sharing `items` (a task id or the
    creator); measured from a wall-clock instant every process shares."""
    async def main() -> Load:
        load = Load()
        offset = time.perf_counter() - time.time()
        measure_from = measure_from_wall + offset
        shared = iter(items)
        await asyncio.gather(*(_connection(route, ports[i % len(ports)], shared, measure_from,
                                           measure_from + seconds, load) for i in range(connections)))
        return load

    load = asyncio.run(main())
    return load.latencies, dict(load.statuses), load.errors


def drive(route: str, ports: list[int], items: list[str], connections: int, generators: int, seconds: float,
          warmup: float) -> Load:
    per = [connections // generators + (1 if i < connections % generators else 0) for i in range(generators)]
    # each process its own slice of the items (a task completed twice would be a 409)
    slices = [items[i::generators] for i in range(generators)]
    measure_from = time.time() + 1.0 + warmup
    with ProcessPoolExecutor(generators, mp_context=get_context("fork")) as pool:
        futures = [pool.submit(generator, route, ports, slices[i], n, measure_from, seconds)
                   for i, n in enumerate(per) if n]
        outcomes = [f.result(timeout=seconds + warmup + 120) for f in futures]
    load = Load(seconds=seconds)
    for latencies, statuses, errors in outcomes:
        load.latencies.extend(latencies)
        load.statuses.update(statuses)
        load.errors += errors
    load.requests = len(load.latencies)
    return load


# -- the database's own ceiling -----------------------------------------------------------------------------------
async def commit_ceiling(server_url: str, connections: int, seconds: float, warmup: float) -> float:
    await ensure_database(server_url, "bench_api")
    url = plain_url(with_database(server_url, "bench_api"))
    setup = await asyncpg.connect(url)
    await setup.execute("DROP TABLE IF EXISTS commits; CREATE TABLE commits (id uuid PRIMARY KEY, body text)")
    await setup.close()
    pool = await asyncpg.create_pool(url, min_size=connections, max_size=connections)
    counted = 0
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + seconds

    async def one() -> None:
        nonlocal counted
        async with pool.acquire() as conn:
            while (now := time.perf_counter()) < stop_at:
                await conn.execute("INSERT INTO commits VALUES ($1, $2)", uuid.uuid4(), "a row like a task's")
                if now >= measure_from:
                    counted += 1

    await asyncio.gather(*(one() for _ in range(connections)))
    await pool.close()
    return counted / seconds


# -- the APIs ------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def apis(module: str, port_variable: str, count: int, env: dict[str, str], logs: Path) -> Iterator[list[int]]:
    ports = [free_port() for _ in range(count)]
    processes = []
    for i, port in enumerate(ports):
        out = (logs / f"{module}-{i}.log").open("wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", module], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**env, port_variable: str(port), "SERVER_INSTANCE": f"{module}-{i}", "LOG_LEVEL": "WARNING"}))
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            while not _healthy(port):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{module} did not answer on {port} (logs in {logs})")
                time.sleep(0.1)
        yield ports
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _fetch(server_url: str, database: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(with_database(server_url, database)))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def seed_hiring(server_url: str, creator: str, count: int) -> list[str]:
    ids = [uuid.uuid4() for _ in range(count)]
    conn = await asyncpg.connect(plain_url(with_database(server_url, "hiring")))
    try:
        await conn.copy_records_to_table("tasks", records=[(i, uuid.UUID(creator), "[Bench] a task") for i in ids],
                                         columns=["id", "creator_id", "title"])
    finally:
        await conn.close()
    return [str(i) for i in ids]


async def written(server_url: str, route: str) -> tuple[int, int]:
    """(rows the route wrote, outbox rows) so far."""
    if route == "create-task":
        rows = await _fetch(server_url, "management", "SELECT (SELECT count(*) FROM tasks), "
                                                      "(SELECT count(*) FROM outbox WHERE event_name = 'TaskCreated')")
    else:
        rows = await _fetch(server_url, "hiring", "SELECT (SELECT count(*) FROM tasks WHERE status = 'completed'), "
                                                  "(SELECT count(*) FROM outbox WHERE event_name = 'TaskCompleted')")
    return int(rows[0][0]), int(rows[0][1])


def run(args: argparse.Namespace) -> int:
    checks: list[tuple[str, bool, str]] = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp, stack(Path(tmp)) as (server_url, bootstrap):
        logs = Path(tmp)
        say("migrating the databases to the final state")
        stages.migrate(server_url, "final")
        say(f"ceiling: single-row commits, {args.connections} connections, {args.seconds:g} s")
        ceiling = asyncio.run(commit_ceiling(server_url, args.connections, args.seconds, args.warmup))
        say(f"  {ceiling:,.0f} commits/s; and on one connection (commits one after another):")
        serial = asyncio.run(commit_ceiling(server_url, 1, args.seconds, args.warmup))
        say(f"  {serial:,.0f} commits/s")
        env = {k: v for k, v in os.environ.items() if not k.endswith("_PORT")} | {
            "DATABASE_URL": server_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REGISTRY_URL": f"http://127.0.0.1:{free_port()}",  # none: the schema client uses schemas/
            "PYTHONUNBUFFERED": "1"}
        with apis("services.management", "MANAGEMENT_PORT", 1, env, logs) as ports:
            creator = httpx.post(f"http://127.0.0.1:{ports[0]}/managers", timeout=10, json={
                "username": "bench.creator", "account_id": "bench"}).json()["manager_id"]
        budget = int(max(ceiling, 1000) * (args.seconds + args.warmup + 2) * 1.5)
        say(f"framework: uvicorn + FastAPI, POST /tasks parsed and answered, no database, {args.connections} "
            f"connections, {args.seconds:g} s")
        with apis("tests.bench.api_noop", "NOOP_PORT", 1, env, logs) as ports:
            framework = drive("create-task", ports, [creator] * budget, args.connections, args.generators,
                              args.seconds, args.warmup)
        say(f"  {framework.rate:,.0f} req/s, statuses {dict(framework.statuses)}")
        checks.append(("framework: only 201, no socket error", set(framework.statuses) == {201} and
                       not framework.errors, f"statuses {dict(framework.statuses)}, errors {framework.errors}"))
        for route, module, variable in (("create-task", "services.management", "MANAGEMENT_PORT"),
                                        ("complete", "services.hiring", "HIRING_PORT")):
            for count in args.processes:
                before = asyncio.run(written(server_url, route))
                items = [creator] * budget if route == "create-task" else asyncio.run(
                    seed_hiring(server_url, creator, budget))
                say(f"{route}: {count} API process(es), {args.connections} connections, {args.seconds:g} s")
                with apis(module, variable, count, env, logs) as ports:
                    load = drive(route, ports, items, args.connections, args.generators, args.seconds, args.warmup)
                after = asyncio.run(written(server_url, route))
                ok = sum(n for s, n in load.statuses.items() if 200 <= s < 300)
                say(f"  {load.rate:,.0f} req/s ({load.rate / ceiling:.2f} of the ceiling), statuses "
                    f"{dict(load.statuses)}, socket errors {load.errors}")
                rows.append(Row(route, count, load, ceiling))
                others = {s: n for s, n in load.statuses.items() if not 200 <= s < 300}
                checks.append((f"{route} x{count}: only 2xx, no socket error", not others and not load.errors,
                               f"other statuses {others}, errors {load.errors}"))
                rows_written, outbox_written = after[0] - before[0], after[1] - before[1]
                # warm-up requests wrote too: at least every measured 2xx, and one outbox row per row
                checks.append((f"{route} x{count}: every 2xx wrote its row and its outbox row",
                               rows_written >= ok and outbox_written == rows_written,
                               f"2xx measured {ok}, rows {rows_written}, outbox rows {outbox_written}"))
                if route == "complete" and budget and len(items) <= rows_written:
                    checks.append((f"{route} x{count}: enough seeded tasks", False, "raise the budget"))
    print(table(args, ceiling, serial, rows, checks, framework))
    return 0 if all(ok for _, ok, _ in checks) else 1


def table(args: argparse.Namespace, ceiling: float, serial: float, rows: list[Row],
          checks: list[tuple[str, bool, str]], framework: Load) -> str:
    lines = [f"\nbench-api{' --quick' if args.quick else ''}: {os.cpu_count()} CPUs, {args.connections} connections "
             f"from {args.generators} load process(es) on this machine, {args.seconds:g} s per row",
             f"database ceiling, single-row commits: {ceiling:,.0f}/s on {args.connections} connections (the "
             f"ceiling below), {serial:,.0f}/s on one connection (vs 1 conn)",
             f"framework ceiling, uvicorn + FastAPI answering POST /tasks with no database, one process: "
             f"{framework.rate:,.0f} req/s (vs framework)", "",
             f"{'route':<14}{'API processes':>14}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs ceiling':>12}"
             f"{'vs 1 conn':>11}{'vs framework':>14}"]
    for r in rows:
        p50, p99 = r.load.percentile(0.5), r.load.percentile(0.99)
        lines.append(f"{r.route:<14}{r.processes:>14}{r.load.rate:>10,.0f}"
                     f"{'-' if p50 is None else f'{p50 * 1000:.1f}':>9}{'-' if p99 is None else f'{p99 * 1000:.1f}':>9}"
                     f"{r.ratio:>12.2f}{r.load.rate / serial if serial else 0:>11.2f}"
                     f"{r.load.rate / framework.rate if framework.rate else 0:>14.2f}")
    lines.append("")
    for route in dict.fromkeys(r.route for r in rows):
        reached = [r.processes for r in rows if r.route == route and r.ratio >= GOAL]
        best = max((r for r in rows if r.route == route), key=lambda r: r.ratio)
        lines.append(f"goal >= {GOAL} of the ceiling: {route}: "
                     + (f"met with {min(reached)} API process(es)" if reached else
                        f"NOT met with up to {max(args.processes)} process(es) (best {best.ratio:.2f} with "
                        f"{best.processes})"))
    lines.append(correctness_line(checks))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short rows, one API process (CI: checks only)")
    parser.add_argument("--seconds", type=float, help="measured seconds per row (default 10; quick 2)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (default 2; quick 1)")
    parser.add_argument("--connections", type=int, default=32, help="client connections (default 32)")
    parser.add_argument("--generators", type=int, default=2, help="load processes (default 2)")
    parser.add_argument("--processes", help="API process counts to try, comma-separated (default 1,2; quick 1)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.processes = [int(p) for p in (args.processes or ("1" if args.quick else "1,2")).split(",")]
    return args


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

