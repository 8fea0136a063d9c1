"""`make bench-e2e`: the whole stack (what `make run` starts, in seed 004's final state) at steady rates of task
outcomes; API answer -> credit visible, and the highest rate it sustains.

- **set-up:** a stack on free ports in a temporary folder (embedded PostgreSQL and Tansu); managers and enough
  tasks for every step are created through management's API and waited for in hiring (TaskCreated).
- **warm-up:** --warmup s at the first rate, checked but not reported (the set-up's own events are still in
  flight, pools and caches cold: the first step's p99 was 2-4x the next ones' without it).
- **steps:** for each --rates R, R outcomes/s for --seconds: `POST /tasks/{id}/complete` (rating 4) or `/fail`
  (one in five) on hiring, sent at planned instants (open loop: a slow answer does not slow the schedule) over
  --connections keep-alive connections. A poller reads bonus's ledger every --poll-ms; a credit is *visible*
  when the poll that returns it ends. Latency = visible - the API's answer, both on this process's clock, so
  it includes up to one poll interval.
- **sustained** when the generator kept its schedule (achieved >= 0.95 R and send lag p99 <= 100 ms), every
  credit was visible within --drain s of the last answer, and the latency did not climb (p50 of the step's last
  quarter - p50 of its first quarter <= 100 ms: a backlog that grows shows as a climbing latency).
- **checks** (they fail the run): every answer 200, no socket error; one ledger row per acknowledged outcome,
  crediting the task's creator with the rule's amount; no credit for anything not acknowledged.
- The goal (p99 <= 100 ms at 200 outcomes/s) is reported, not judged.

    python -m tests.bench.e2e [--quick] [--rates 200,400,600,1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from eventbus.db import plain_url, with_database
from services.bonus.domain import CreditRule
from services.stack import Stack, StackSettings
from services.stack.topology import PROCESS_NAMES
from tests.bench.common import Connection, correctness_line, cpu_seconds, say
from tests.waiting import free_port

GOAL_RATE, GOAL_P99_MS = 200, 100.0
RATING = 4
FAIL_EVERY = 5  # one outcome in five is a failure
RULE = CreditRule()


@dataclass
class Step:
    rate: int
    seconds: float
    #: task -> (planned, sent, answered) on this process's perf_counter clock
    sent: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    #: task -> when its credit was visible
    visible: dict[str, float] = field(default_factory=dict)
    drained: bool = False
    #: CPU seconds per process label from the first request to the last credit visible
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    failed: set[str] = field(default_factory=set)

    def answered(self) -> dict[str, float]:
        return {t: answered for t, (_, _, answered) in self.sent.items()}

    def latencies_ms(self) -> list[float]:
        answered = self.answered()
        return sorted((self.visible[t] - answered[t]) * 1000 for t in answered if t in self.visible)

    def achieved(self) -> float:
        if len(self.sent) < 2:
            return 0.0
        sends = [s for _, s, _ in self.sent.values()]
        return (len(sends) - 1) / (max(sends) - min(sends))

    def lag_p99_ms(self) -> float:
        return pct(sorted((s - p) * 1000 for p, s, _ in self.sent.values()), 0.99)

    def climb_ms(self) -> float:
        """p50 latency of the step's last quarter (by answer time) minus that of its first quarter."""
        answered = self.answered()
        ordered = [(self.visible[t] - answered[t]) * 1000 for t in sorted(answered, key=answered.__getitem__)
                   if t in self.visible]
        quarter = max(1, len(ordered) // 4)
        return pct(sorted(ordered[-quarter:]), 0.5) - pct(sorted(ordered[:quarter]), 0.5)

    def sustained(self) -> tuple[bool, str]:
        reasons = []
        if self.achieved() < 0.95 * self.rate:
            reasons.append(f"generator achieved {self.achieved():,.0f}/s")
        if self.lag_p99_ms() > 100:
            reasons.append(f"send lag p99 {self.lag_p99_ms():,.0f} ms")
        if not self.drained:
            reasons.append("credits still missing after the drain window")
        if self.climb_ms() > 100:
            reasons.append(f"latency climbed {self.climb_ms():,.0f} ms over the step")
        return not reasons, "; ".join(reasons) or "kept up"


# -- where the CPU goes: every process of this run (the stack's, the servers' and their children, this one) -----------
def _label(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if pid == os.getpid():
        return "bench (load + poller)"
    if b"-m" in argv and argv.index(b"-m") + 1 < len(argv):
        return argv[argv.index(b"-m") + 1].decode()
    return Path(argv[0].decode(errors="replace")).name.split(":")[0] or "?"


def cpu_tree() -> dict[int, tuple[str, float]]:
    """pid -> (label, user + system CPU seconds) of this process and all its descendants; PostgreSQL's backends
    count as `postgres` (a label is the python module run with -m, else the executable's name)."""
    found: dict[int, tuple[str, float]] = {}
    todo: list[tuple[int, str | None]] = [(os.getpid(), None)]
    while todo:
        pid, parent_label = todo.pop()
        try:
            label = parent_label if parent_label == "postgres" else _label(pid)
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:  # gone meanwhile
            continue
        seconds = cpu_seconds(pid)
        if seconds is not None:
            found[pid] = (label, seconds)
        todo += [(int(c), label) for c in children]
    return found


def cpu_used(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    used: dict[str, float] = {}
    for pid, (label, seconds) in after.items():
        used[label] = used.get(label, 0.0) + seconds - (before[pid][1] if pid in before else 0.0)
    return used


def pct(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


# -- set-up ----------------------------------------------------------------------------------------------------------
async def create(port: int, path: str, bodies: Sequence[Mapping[str, object]], key: str, connections: int
                 ) -> list[str]:
    """POST every body (201 expected) over `connections` connections; the `key` field of each answer, in the
    bodies' order."""
    out: list[str] = [""] * len(bodies)
    pending = iter(enumerate(bodies))
    done = 0

    async def worker() -> None:
        nonlocal done
        conn = Connection(port)
        try:
            for i, body in pending:
                status, answer = await conn.post(path, body)
                if status != 201:
                    raise SystemExit(f"set-up: POST {path} answered {status}: {answer[:300]!r}")
                out[i] = json.loads(answer)[key]
                done += 1
                if done % 2000 == 0:
                    say(f"    {path}: {done:,}/{len(bodies):,}")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return out


async def wait_known(hiring_db: str, tasks: list[str], timeout: float) -> None:
    conn = await asyncpg.connect(hiring_db)
    try:
        deadline = time.monotonic() + timeout
        count = "SELECT count(*) FROM tasks WHERE id = ANY($1::uuid[])"
        while (known := await conn.fetchval(count, tasks)) < len(tasks):
            if time.monotonic() > deadline:
                raise SystemExit(f"set-up: hiring knows {known:,} of {len(tasks):,} tasks after {timeout:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


# -- a step ----------------------------------------------------------------------------------------------------------
async def run_step(step: Step, hiring_port: int, tasks: list[str], connections: int) -> None:
    total = int(step.rate * step.seconds)
    schedule = itertools.count()
    started = time.perf_counter() + 0.2

    async def sender() -> None:
        conn = Connection(hiring_port)
        try:
            while (i := next(schedule)) < total:
                planned = started + i / step.rate
                delay = planned - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = tasks[i]
                outcome = "fail" if i % FAIL_EVERY == FAIL_EVERY - 1 else "complete"
                body: dict[str, object] = {"candidate_id": str(uuid.uuid4())}
                if outcome == "complete":
                    body["rating"] = RATING
                sent = time.perf_counter()
                try:
                    status, answer = await conn.post(f"/tasks/{task}/{outcome}", body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    step.errors.append(f"{task}: {exc!r}")
                    await conn.close()
                    conn = Connection(hiring_port)
                    continue
                step.statuses[status] += 1
                if status == 200:
                    step.sent[task] = (planned, sent, time.perf_counter())
                    if outcome == "fail":
                        step.failed.add(task)
                elif len(step.errors) < 20:
                    step.errors.append(f"{task}: {status} {answer[:200]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(sender() for _ in range(connections)))


async def poll_ledger(bonus_db: str, visible: dict[str, float], stop: asyncio.Event, every: float,
                      progress: asyncio.Event) -> None:
    """Every `every` s, the ledger's new rows: when each task's credit was first visible, and how many it has."""
    conn = await asyncpg.connect(bonus_db)
    last = await conn.fetchval("SELECT coalesce(max(id), 0) FROM ledger")
    try:
        while not stop.is_set():
            rows = await conn.fetch("SELECT id, task_id::text FROM ledger WHERE id > $1 ORDER BY id", last)
            now = time.perf_counter()
            for row in rows:
                visible.setdefault(row[1], now)
                last = row[0]
            if rows:
                progress.set()
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def wait_visible(tasks: Mapping[str, object], visible: dict[str, float], progress: asyncio.Event,
                       until: float) -> bool:
    """Until every task's credit is visible (True) or `until` passes (False); woken by the poller's progress."""
    while True:
        progress.clear()
        if all(t in visible for t in tasks):
            return True
        remaining = until - time.perf_counter()
        if remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(progress.wait(), remaining)


# -- the run ---------------------------------------------------------------------------------------------------------
async def amain(args: argparse.Namespace, stack: Stack) -> int:
    urls = stack.urls()
    port = {name: int(urls[name].rsplit(":", 1)[1]) for name in ("management", "hiring")}
    assert stack.database_url is not None
    hiring_db = plain_url(with_database(stack.database_url, "hiring"))
    bonus_db = plain_url(with_database(stack.database_url, "bonus"))
    plan = [(args.rates[0], args.warmup, True)] if args.warmup > 0 else []
    plan += [(rate, args.seconds, False) for rate in args.rates]
    needed = sum(int(rate * seconds) for rate, seconds, _ in plan)
    rng = random.Random(args.seed)

    say(f"set-up: {args.managers} managers, {needed:,} tasks through management's API")
    managers = await create(port["management"], "/managers",
                            [{"account_id": f"bench-{i}", "username": f"bench.m{i}"}  # final state: no names
                             for i in range(args.managers)], "manager_id", 8)
    bodies = [{"creator_id": rng.choice(managers), "title": "[Bench] e2e"} for _ in range(needed)]
    tasks = await create(port["management"], "/tasks", bodies, "task_id", args.connections)
    creators = {t: b["creator_id"] for t, b in zip(tasks, bodies, strict=True)}
    await wait_known(hiring_db, tasks, args.timeout)
    say(f"set-up: hiring knows all {len(tasks):,} tasks")

    steps: list[Step] = []
    warm: list[Step] = []  # checked like the others, not reported
    visible: dict[str, float] = {}
    stop = asyncio.Event()
    progress = asyncio.Event()
    poller = asyncio.create_task(poll_ledger(bonus_db, visible, stop, args.poll_ms / 1000, progress))
    offset = 0
    try:
        for rate, seconds, warming in plan:
            step = Step(rate, seconds)
            n = int(rate * seconds)
            say(f"{'warm-up (not reported)' if warming else 'step'}: {rate:,} outcomes/s for {seconds:g}s "
                f"({n:,} requests, {args.connections} connections)")
            cpu_before, wall_before = cpu_tree(), time.perf_counter()
            await run_step(step, port["hiring"], tasks[offset:offset + n], args.connections)
            offset += n
            await wait_visible(step.sent, visible, progress, time.perf_counter() + args.drain)
            last_answer = max((a for _, _, a in step.sent.values()), default=0.0)
            step.drained = all(t in visible for t in step.sent) and all(
                visible[t] - last_answer <= args.drain for t in step.sent)
            # what is still missing: wait longer, for the checks
            await wait_visible(step.sent, visible, progress, time.perf_counter() + args.timeout)
            step.visible = {t: visible[t] for t in step.sent if t in visible}
            step.cpu = cpu_used(cpu_before, cpu_tree())
            step.wall = max(step.visible.values(), default=time.perf_counter()) - wall_before
            lat = step.latencies_ms()
            ok, why = step.sustained()
            say(f"    answered {len(step.sent):,}, achieved {step.achieved():,.0f}/s; answer -> credit visible p50 "
                f"{pct(lat, 0.5):.1f} / p99 {pct(lat, 0.99):.1f} / max {pct(lat, 1.0):.1f} ms; "
                f"{'sustained' if ok else 'NOT sustained'} ({why})")
            (warm if warming else steps).append(step)
    finally:
        stop.set()
        await poller

    # -- checks: every acknowledged outcome credited once, to its task's creator, with the rule's amount
    checks: list[tuple[str, bool, str]] = []
    statuses = sum((s.statuses for s in warm + steps), Counter())
    errors = [e for s in warm + steps for e in s.errors]
    checks.append(("every answer 200, no socket error", set(statuses) <= {200} and not errors,
                   f"statuses {dict(statuses)}, {len(errors)} errors {errors[:3]}"))
    acked = {t for s in warm + steps for t in s.sent}
    conn = await asyncpg.connect(bonus_db)
    try:
        rows = await conn.fetch("SELECT task_id::text, manager_id::text, outcome, amount FROM ledger "
                                "WHERE task_id = ANY($1::uuid[])", tasks)
    finally:
        await conn.close()
    per_task = Counter(r[0] for r in rows)
    checks.append(("one ledger row per acknowledged outcome",
                   set(per_task) == acked and all(c == 1 for c in per_task.values()),
                   f"{len(per_task):,} tasks credited of {len(acked):,} acknowledged, "
                   f"{sum(1 for c in per_task.values() if c > 1)} credited twice"))
    outcome_of = {t: "failed" if t in s.failed else "completed" for s in warm + steps for t in s.sent}
    wrong = [r for r in rows if r[1] != creators[r[0]] or r[2] != outcome_of.get(r[0])
             or r[3] != RULE.amount(r[2], RATING if r[2] == "completed" else None)]
    checks.append(("each credit to the task's creator, outcome and amount per rule", not wrong,
                   f"{len(wrong)} wrong, e.g. {[tuple(r) for r in wrong[:2]]}"))

    print()
    print(f"bench-e2e{' --quick' if args.quick else ''}: stack in the final state, {os.cpu_count()} CPUs, "
          f"{args.connections} connections, ledger polled every {args.poll_ms:g} ms")
    header = (f"{'outcomes/s':>10}  {'achieved':>8}  {'answered':>8}  {'API p50':>7}  {'API p99':>7}  "
              f"{'e2e p50':>7}  {'e2e p99':>7}  {'e2e max':>7}  {'climb':>6}  sustained")
    print(header)
    print("-" * (len(header) + 30))
    best = 0
    for s in steps:
        lat = s.latencies_ms()
        api = sorted((a - sent) * 1000 for _, sent, a in s.sent.values())
        ok, why = s.sustained()
        if ok:
            best = max(best, s.rate)
        print(f"{s.rate:>10,}  {s.achieved():>8,.0f}  {len(s.sent):>8,}  {pct(api, 0.5):>7.1f}  "
              f"{pct(api, 0.99):>7.1f}  {pct(lat, 0.5):>7.1f}  {pct(lat, 0.99):>7.1f}  {pct(lat, 1.0):>7.1f}  "
              f"{s.climb_ms():>6.0f}  "
              f"{'yes' if ok else 'no: ' + why}")
    print()
    cores = os.cpu_count() or 1

    def cell(step: Step, seconds: float) -> str:  # share of the cores' time, and us per outcome
        return f"{seconds / (step.wall * cores):>7.0%} {seconds / max(1, len(step.sent)) * 1e6:>6,.0f}"

    print(f"where the CPU went per step (share of the {cores} cores' time from the first request to the last credit "
          "visible; us per outcome)")
    labels = sorted({k for s in steps for k in s.cpu}, key=lambda k: -sum(s.cpu.get(k, 0.0) for s in steps))
    print(f"{'process':<28}" + "".join(f"{s.rate:>12,}/s" for s in steps))
    for label in labels:
        print(f"{label:<28}" + "".join(cell(s, s.cpu.get(label, 0.0)) for s in steps))
    print(f"{'total':<28}" + "".join(cell(s, sum(s.cpu.values())) for s in steps))
    print("latencies in ms; e2e = API answer -> credit visible in bonus's ledger (includes up to one poll interval)")
    print(f"highest sustained rate: {best:,} outcomes/s" if best else "highest sustained rate: none of the steps")
    at_goal = [s for s in steps if s.rate == GOAL_RATE]
    if at_goal:
        p99 = pct(at_goal[0].latencies_ms(), 0.99)
        print(f"goal p99 <= {GOAL_P99_MS:g} ms at {GOAL_RATE} outcomes/s: {p99:.1f} ms "
              f"{'meets' if p99 <= GOAL_P99_MS else 'does not meet'}")
    print(correctness_line(checks))
    return 0 if all(ok for _, ok, _ in checks) else 1


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.e2e", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default=None, help="outcomes/s per step, comma-separated (default 200,400,600,1000)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per step (default 10)")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds at the first rate before the measured steps, checked but not reported: the "
                             "set-up's own events are still being relayed and applied, pools and caches are cold "
                             "(default 5; --quick 1)")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections of the load (default 64)")
    parser.add_argument("--managers", type=int, default=50, help="managers the tasks are spread over (default 50)")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="ledger poll interval, ms (default 5)")
    parser.add_argument("--drain", type=float, default=2.0,
                        help="seconds after a step's last answer within which every credit must be visible for the "
                             "step to count as sustained (default 2)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any wait may take (default 120)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the stack's folder (logs) afterwards")
    parser.add_argument("--quick", action="store_true",
                        help="one step of 50 outcomes/s for 3 s, every check, in under a minute (make bench-quick)")
    args = parser.parse_args(argv)
    rates = args.rates or ("50" if args.quick else "200,400,600,1000")
    args.rates = [int(r) for r in rates.split(",") if r.strip()]
    args.seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    if not args.rates or any(r <= 0 for r in args.rates) or not 0 < args.seconds < 3600 \
            or not 0 <= args.warmup < 3600:
        parser.error("--rates and --seconds must be positive, --warmup not negative, each under an hour")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    settings = StackSettings(
        database_url=None, kafka_bootstrap_servers=None, stack_data_dir=workdir,
        embedded_pg_port=free_port(), embedded_kafka_port=free_port(),
        ports={name: free_port() for name in PROCESS_NAMES}, ready_timeout=180, stack_start="final")
    stack = Stack(settings)
    say(f"starting the stack (final state) in {workdir}")
    try:
        ready = stack.up(progress=False)
        say(f"stack ready in {ready:.1f}s")
        return asyncio.run(amain(args, stack))
    finally:
        stack.down()
        if args.keep:
            say(f"kept {workdir} (logs in {workdir / 'logs'})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
