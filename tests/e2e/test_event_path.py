"""The whole event path as processes: API -> outbox -> relay -> Tansu -> Faust worker -> ledger."""

from __future__ import annotations

import signal
import uuid

import httpx
import pytest

from services.demo import run as run_demo
from services.stack import Stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e


def _urls(stack: Stack) -> dict[str, str]:
    return stack.urls()


def _new_task(client: httpx.Client, urls: dict[str, str], manager_id: str, title: str) -> str:
    r = client.post(f"{urls['management']}/tasks", json={"creator_id": manager_id, "title": title})
    assert r.status_code == 201, r.text
    task_id: str = r.json()["task_id"]
    eventually_sync(lambda: client.get(f"{urls['hiring']}/tasks/{task_id}").status_code == 200,
                    what=f"hiring to learn task {task_id}")
    return task_id


def _ledger(client: httpx.Client, urls: dict[str, str], manager_id: str) -> list[dict[str, object]]:
    r = client.get(f"{urls['bonus']}/managers/{manager_id}/ledger")
    return [] if r.status_code == 404 else list(r.json()["entries"])




def test_demo_credits_each_task_exactly_once(stack: Stack) -> None:
    urls = _urls(stack)
    base = {k: urls[k] for k in ("management", "hiring", "bonus")}
    assert run_demo(base, n_managers=2, n_tasks=3, timeout=60) == 0


def test_credit_appears_once_and_stays_once(stack: Stack) -> None:
    urls = _urls(stack)
    with httpx.Client(timeout=10) as client:
        manager_id = client.post(f"{urls['management']}/managers", json={
            "username": "once.only", "account_id": "e2e"}).json()["manager_id"]
        task_id = _new_task(client, urls, manager_id, "[E2E] Exactly once")
        r = client.post(f"{urls['hiring']}/tasks/{task_id}/complete", json={"candidate_id": str(uuid.uuid4())})
        assert r.status_code == 200
        retry = client.post(f"{urls['hiring']}/tasks/{task_id}/complete", json={"candidate_id": str(uuid.uuid4())})
        assert retry.status_code == 409  # a client retry is refused, not a second event
        eventually_sync(lambda: len(_ledger(client, urls, manager_id)) == 1, what="the credit")
        # the manager, the task and the result have all been applied: nothing is still in flight
        eventually_sync(lambda: _balance(client, urls, manager_id) == 10, what="balance 10")
        assert len(_ledger(client, urls, manager_id)) == 1


def _balance(client: httpx.Client, urls: dict[str, str], manager_id: str) -> int:
    return int(client.get(f"{urls['bonus']}/managers/{manager_id}/balance").json()["balance"])


def test_events_produced_while_the_worker_is_down_are_applied_when_it_returns(stack: Stack) -> None:
    urls = _urls(stack)
    supervisor = stack.supervisor
    assert supervisor is not None
    with httpx.Client(timeout=10) as client:
        manager_id = client.post(f"{urls['management']}/managers", json={
            "username": "down.time", "account_id": "e2e"}).json()["manager_id"]
        tasks = [_new_task(client, urls, manager_id, f"[E2E] While down {i}") for i in range(4)]
        supervisor.signal("bonus-worker", signal.SIGTERM)
        eventually_sync(lambda: "bonus-worker" in supervisor.exited(), what="the bonus worker to stop")
        for i, task_id in enumerate(tasks):
            outcome = "complete" if i % 2 == 0 else "fail"
            assert client.post(f"{urls['hiring']}/tasks/{task_id}/{outcome}",
                               json={"candidate_id": str(uuid.uuid4())}).status_code == 200
        assert _ledger(client, urls, manager_id) == []  # nobody is consuming
        supervisor.start(supervisor.specs["bonus-worker"])
        supervisor.wait_healthy(["bonus-worker"], timeout=60)
        eventually_sync(lambda: len(_ledger(client, urls, manager_id)) == 4, timeout=60,
                        what="the four credits after the restart")
        assert _balance(client, urls, manager_id) == 10 + 2 + 10 + 2
        assert sorted(e["task_id"] for e in _ledger(client, urls, manager_id)) == sorted(tasks)
