"""`make demo`: drive the event path through the HTTP APIs of a running stack and time it.

Creates managers and tasks in management, waits for hiring to learn each task from TaskCreated,
completes or fails it in hiring, and measures the time from hiring's response to the credit
being visible in bonus (outbox -> relay -> broker -> worker -> ledger).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from typing import Any

import httpx

from eventbus.stack.state import data_dir_from_env, read_state
from eventbus.stack.target import shown_path, why_no_stack


class DemoError(RuntimeError):
    pass


def wait_for(check: Any, what: str, timeout: float) -> float:
    """Poll `check()` until it returns something truthy; return the seconds it took."""
    started = time.perf_counter()
    while True:
        if check():
            return time.perf_counter() - started
        if time.perf_counter() - started > timeout:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.002)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--managers", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=3, help="tasks per manager")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for each step")
    args = parser.parse_args()
    data_dir = data_dir_from_env()
    state = read_state(data_dir)
    if state is None or not state.ready:
        reason = why_no_stack(data_dir) if state is None else f"the stack (pid {state.pid}) is still starting"
        print(f"no stack to drive: {reason}; start it with `make run-bg` (or `make run` in another terminal)",
              file=sys.stderr)
        return 1
    base = {name: state.urls[name] for name in ("management", "hiring", "bonus")}
    print(f"stack: {shown_path(data_dir)} (pid {state.pid}), " + ", ".join(f"{k} {v}" for k, v in base.items()))
    try:
        return run(base, args.managers, args.tasks, args.timeout)
    except httpx.ConnectError as exc:
        print(f"cannot reach the stack ({exc}); start it with `make run` or `make run-bg`", file=sys.stderr)
        return 1
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1


def run(base: dict[str, str], n_managers: int, n_tasks: int, timeout: float) -> int:
    client = httpx.Client(timeout=10)
    e2e: list[float] = []
    managers = []
    for i in range(n_managers):
        username = f"demo.{uuid.uuid4().hex[:8]}"
        r = client.post(f"{base['management']}/managers", json={"first_name": f"Demo{i}", "last_name": "Manager",
                                                                 "username": username, "account_id": f"demo-{i}"})
        if r.status_code == 422 and "no longer taken" in r.text:  # after US-170: a username only
            r = client.post(f"{base['management']}/managers", json={"username": username, "account_id": f"demo-{i}"})
        r.raise_for_status()
        managers.append(r.json() | {"username": username})
    print(f"created {len(managers)} managers")
    expected: dict[str, int] = {m["manager_id"]: 0 for m in managers}
    step = 0
    for m in managers:
        for j in range(n_tasks):
            r = client.post(f"{base['management']}/tasks",
                            json={"creator_id": m["manager_id"], "title": f"[Demo] Task {j} of {m['username']}"})
            r.raise_for_status()
            task_id = r.json()["task_id"]
            replicated = wait_for(lambda t=task_id: client.get(f"{base['hiring']}/tasks/{t}").status_code == 200,
                                  f"hiring to learn task {task_id}", timeout)
            outcome = "complete" if step % 3 != 2 else "fail"
            step += 1
            r = client.post(f"{base['hiring']}/tasks/{task_id}/{outcome}", json={"candidate_id": str(uuid.uuid4())})
            r.raise_for_status()
            before = len(ledger(client, base, m["manager_id"]))
            took = wait_for(lambda mid=m["manager_id"], b=before: len(ledger(client, base, mid)) > b,
                            f"the credit for task {task_id}", timeout)
            e2e.append(took)
            expected[m["manager_id"]] += 1
            print(f"  task {task_id[:8]} {outcome:<8} TaskCreated->hiring {replicated * 1000:6.1f} ms   "
                  f"hiring response->credit visible {took * 1000:6.1f} ms")
    print("\nbalances:")
    ok = True
    for m in managers:
        balance = client.get(f"{base['bonus']}/managers/{m['manager_id']}/balance").json()
        entries = ledger(client, base, m["manager_id"])
        once = len(entries) == expected[m["manager_id"]] == len({(e["task_id"], e["outcome"]) for e in entries})
        ok &= once
        print(f"  {m['username']:<20} balance {balance['balance']:>4}  credits {balance['credits']}"
              f"  ({'each task credited once' if once else 'MISMATCH'})")
    print(f"\nend-to-end (hiring response -> credit visible), {len(e2e)} events: "
          f"min {min(e2e) * 1000:.1f} ms, median {statistics.median(e2e) * 1000:.1f} ms, max {max(e2e) * 1000:.1f} ms")
    return 0 if ok else 1


def ledger(client: httpx.Client, base: dict[str, str], manager_id: str) -> list[dict[str, Any]]:
    r = client.get(f"{base['bonus']}/managers/{manager_id}/ledger")
    if r.status_code == 404:
        return []
    r.raise_for_status()
    entries: list[dict[str, Any]] = r.json()["entries"]
    return entries


if __name__ == "__main__":
    sys.exit(main())
