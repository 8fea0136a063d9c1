"""`make traffic`: a load generator for the APIs (managers, tasks, completions, failures) that remembers every
acknowledged request, then reconciles: each is reflected exactly once (the e2e tests use it the same way).

`python -m services.traffic --seconds 60` drives the running stack and prints the reconciliation; the
playbooks' gates that measure "everything works" need traffic like it.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.bonus.domain import CreditRule


@dataclass
class Acknowledged:
    managers: dict[str, dict[str, Any]] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)  # task -> creator
    #: task -> (outcome, rating): a 200 from hiring
    outcomes: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    #: task -> when hiring acknowledged its outcome (time.monotonic())
    acked_at: dict[str, float] = field(default_factory=dict)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


class Traffic:
    """`workers` loops, each: sometimes a new manager, a task, wait for hiring to know it, complete or fail it."""

    def __init__(self, urls: dict[str, str], *, workers: int = 4, seed: int = 7, pause: float = 0.02,
                 rate: float | None = None) -> None:
        self.urls = urls
        self.workers = workers
        self.rng = random.Random(seed)
        self.pause = pause
        #: at most this many tasks started per second across the workers (None: as fast as they go)
        self.rate = rate
        self._next_slot = 0.0
        self.ack = Acknowledged()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.fields = "names"  # "username" once US-170 stops taking names: switch with use_usernames()

    def use_usernames(self) -> None:
        self.fields = "username"

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=10)
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self.workers)]

    async def stop(self) -> Acknowledged:
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()
        return self.ack

    def _count(self, what: str, response: httpx.Response) -> None:
        self.ack.statuses[f"{what} {response.status_code}"] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self.ack.errors.append(f"{what}: {response.status_code} {response.text[:200]}")

    async def _new_manager(self, n: int) -> str | None:
        body: dict[str, Any] = {"account_id": f"acc-{n % 7}"}
        suffix = uuid.uuid4().hex[:8]
        if self.fields == "names":
            body |= {"first_name": f"First{suffix}", "last_name": f"Last{n}"}
        else:
            body["username"] = f"user.{suffix}"
        response = await self.client.post(f"{self.urls['management']}/managers", json=body)
        self._count("manager", response)
        if response.status_code == 422 and self.fields == "names" and "no longer taken" in response.text:
            self.fields = "username"  # US-170 step 18 happened under us
            return None
        if response.status_code != 201:
            return None
        manager = response.json()
        self.ack.managers[manager["manager_id"]] = manager
        return str(manager["manager_id"])

    async def _loop(self, worker: int) -> None:
        mine: list[str] = []
        n = 0
        while not self._stop.is_set():
            n += 1
            try:
                if not mine or self.rng.random() < 0.15:
                    manager = await self._new_manager(worker * 100_000 + n)
                    if manager:
                        mine.append(manager)
                    continue
                await self._pace()
                creator = self.rng.choice(mine)
                area = self.rng.choice(["Math", "Physics", "Art", "Law"])
                response = await self.client.post(f"{self.urls['management']}/tasks", json={
                    "creator_id": creator, "title": f"[{area}] Task {worker}-{n}"})
                self._count("task", response)
                if response.status_code != 201:
                    continue
                task = response.json()["task_id"]
                self.ack.tasks[task] = creator
                await self._finish(task)
            except httpx.HTTPError as exc:
                self.ack.statuses[f"transport {type(exc).__name__}"] += 1
                await asyncio.sleep(0.2)
            await asyncio.sleep(self.pause)

    async def _pace(self) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / self.rate
        await asyncio.sleep(slot - now)

    async def _finish(self, task: str) -> None:
        outcome = "complete" if self.rng.random() < 0.8 else "fail"
        body: dict[str, Any] = {"candidate_id": str(uuid.uuid4())}
        rating = None
        if outcome == "complete":
            rating = self.rng.randint(1, 5)
            body["rating"] = rating
        done = "completed" if outcome == "complete" else "failed"
        deadline = time.monotonic() + 60
        sent = False
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                response = await self.client.post(f"{self.urls['hiring']}/tasks/{task}/{outcome}", json=body)
            except httpx.HTTPError as exc:  # hiring went away mid-call: the outcome may be in; ask again
                self.ack.statuses[f"{outcome} transport {type(exc).__name__}"] += 1
                sent = True
                await asyncio.sleep(0.2)
                continue
            self._count(outcome, response)
            if response.status_code == 200 or (
                    response.status_code == 409 and sent and response.json().get("status") == done):
                # a 409 "already <what we asked>" after a lost answer: our earlier call went in
                self.ack.outcomes[task] = (done, rating)
                self.ack.acked_at[task] = time.monotonic()
                return
            if response.status_code in (404, 502, 503, 504):  # hiring does not know the task yet; a dependency
                await asyncio.sleep(0.1)                         # is down: retry
                continue
            return  # another 409 would be a bug (a fresh task), counted in statuses


async def ledger_of(client: httpx.AsyncClient, bonus: str, manager: str) -> list[dict[str, Any]]:
    response = await client.get(f"{bonus}/managers/{manager}/ledger", params={"limit": 1000})
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json()["entries"])


async def reconcile(urls: dict[str, str], ack: Acknowledged, rule: CreditRule | None = None,
                    timeout: float = 90.0) -> dict[str, Any]:
    """Wait until every acknowledged outcome is credited (or the timeout), then compare exactly: each outcome
    credited once with the right amount, no credit without an acknowledged outcome, every balance the sum of
    its credits, every manager and task known."""
    rule = rule or CreditRule()
    async with httpx.AsyncClient(timeout=10) as client:
        deadline = time.monotonic() + timeout
        while True:
            entries: dict[str, list[dict[str, Any]]] = {}
            for manager in ack.managers:
                entries[manager] = await ledger_of(client, urls["bonus"], manager)
            credited = {e["task_id"] for es in entries.values() for e in es}
            missing = [t for t in ack.outcomes if t not in credited]
            if not missing or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        lost, doubled, wrong, unexpected, balances_off = [], [], [], [], []
        for manager, es in entries.items():
            per_task = Counter(e["task_id"] for e in es)
            for task, count in per_task.items():
                if task not in ack.outcomes:
                    unexpected.append(task)
                elif count > 1:
                    doubled.append(task)
            for e in es:
                if e["task_id"] in ack.outcomes:
                    outcome, rating = ack.outcomes[e["task_id"]]
                    if e["outcome"] != outcome or e["amount"] != rule.amount(outcome, rating):
                        wrong.append((e["task_id"], e["outcome"], e["amount"], outcome, rating))
            balance = (await client.get(f"{urls['bonus']}/managers/{manager}/balance")).json()
            if es and balance["balance"] != sum(e["amount"] for e in es):
                balances_off.append(manager)
        for task, (_outcome, _rating) in ack.outcomes.items():
            creator = ack.tasks[task]
            if not any(e["task_id"] == task for e in entries.get(creator, [])):
                lost.append(task)
        unknown_tasks = [t for t in list(ack.tasks)[:200]
                         if (await client.get(f"{urls['management']}/tasks/{t}")).status_code != 200]
    return {"acknowledged_outcomes": len(ack.outcomes), "managers": len(ack.managers), "tasks": len(ack.tasks),
            "lost": lost, "doubled": doubled, "wrong_amount": wrong, "unexpected": unexpected,
            "balances_off": balances_off, "unknown_tasks": unknown_tasks, "server_errors": ack.errors,
            "statuses": dict(ack.statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.traffic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30, help="how long to drive the APIs")
    parser.add_argument("--workers", type=int, default=3, help="concurrent clients")
    args = parser.parse_args()
    from eventbus.stack.target import resolve
    target = resolve()
    stack = target.stack
    if stack is None or not stack.ready:
        raise SystemExit(f"no running stack to drive: {target.no_stack_reason or 'it is starting'}; "
                         "start it with `make run-bg`")
    print(target.describe(), flush=True)

    async def run() -> int:
        traffic = Traffic(stack.urls, workers=args.workers)
        await traffic.start()
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            await asyncio.sleep(min(5.0, args.seconds))
            print(f"  {time.monotonic() - started:5.0f} s: {len(traffic.ack.outcomes)} outcomes acknowledged, "
                  f"{len(traffic.ack.managers)} managers", flush=True)
        ack = await traffic.stop()
        result = await reconcile(stack.urls, ack)
        problems = {k: result[k] for k in ("lost", "doubled", "wrong_amount", "unexpected", "balances_off",
                                           "unknown_tasks", "server_errors") if result[k]}
        print(f"reconciled {result['acknowledged_outcomes']} outcomes of {result['managers']} managers: "
              + ("each credited exactly once, with the right amount" if not problems else f"PROBLEMS {problems}"))
        print(f"answers: {dict(sorted(result['statuses'].items()))}")
        return 1 if problems else 0

    raise SystemExit(asyncio.run(run()))


if __name__ == "__main__":
    main()
