"""The synchronous links with real processes killed while traffic flows (seed 001, seed 004's links):
callers get marked fallbacks or 503s, never a 500; a breaker opens within its threshold, lets one trial
through once the dependency is back, and closes; no credit is lost or doubled."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from eventbus.consumer.replay.read import read_records
from eventbus.db import plain_url, with_database
from eventbus.stack.state import read_state
from services.traffic import Traffic, reconcile
from tests.e2e.conftest import Background, background_stack
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    # a short reset timeout so the breakers' trial comes soon after the dependency is back; no automatic
    # restarts: the outages here last until the test restarts the process
    yield from background_stack(tmp_path_factory.mktemp("links"), LINK_BREAKER_RESET="1", STACK_AUTO_RESTART="0",
                                LINK_BREAKER_THRESHOLD="3")


def kill(stack: Background, name: str) -> None:
    state = read_state(stack.data_dir)
    assert state is not None and state.processes[name].pid
    os.killpg(state.processes[name].pid, signal.SIGKILL)


async def restart(stack: Background, name: str) -> None:
    result = await asyncio.to_thread(stack.run, "services.stack", "restart", name, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


async def link_state(client: httpx.AsyncClient, url: str, link: str) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get(f"{url}/health")).json()
    state: dict[str, Any] = body["links"][link]
    return state


async def test_management_down_bonus_answers_with_marked_fallbacks_and_its_breaker_cycles(stack: Background) -> None:
    """COMM-070 before: bonus asks management for a manager's details."""
    bonus, management = stack.url("bonus"), stack.url("management")
    async with httpx.AsyncClient(timeout=10) as client:
        manager = (await client.post(f"{management}/managers", json={"first_name": "Ada", "last_name": "L",
                                                                     "account_id": "a"})).json()["manager_id"]
        seen = (await client.get(f"{bonus}/managers/{manager}/balance")).json()
        assert seen["manager"]["source"] == "management-api"
        kill(stack, "management")
        killed = time.monotonic()
        answers = [await client.get(f"{bonus}/managers/{m}/balance") for m in (manager, uuid.uuid4(), manager)]
        opened = await link_state(client, bonus, "management")
        open_after = time.monotonic() - killed
        assert [a.status_code for a in answers] == [200, 200, 200]  # never a 500, never a wrong 404
        assert answers[0].json()["manager"] | {"stale": True} == seen["manager"] | {"source": "cache", "stale": True}
        assert answers[1].json()["manager"]["source"] == "stub" and answers[1].json()["manager"]["stale"]
        assert opened["breaker"] == "open" and opened["failed"] == 3  # opened at its threshold
        await restart(stack, "management")
        back = time.monotonic()

        async def closed() -> bool:
            r = await client.get(f"{bonus}/managers/{manager}/balance")
            return bool(r.json()["manager"]["source"] == "management-api")

        await eventually(closed, timeout=20, interval=0.2, what="the trial call to close the breaker")
        print(f"management killed -> bonus breaker open: {open_after:.2f} s (3 calls); "
              f"management healthy -> breaker closed: {time.monotonic() - back:.2f} s")
        assert (await link_state(client, bonus, "management"))["breaker"] == "closed"


async def test_bonus_down_completions_are_503_with_nothing_written_and_credit_once_after(
        stack: Background) -> None:
    """COMM-040 before: a completion credits over HTTP inside hiring's transaction."""
    traffic = Traffic(stack.urls, workers=3)
    await traffic.start()
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            await eventually(lambda: _acked(traffic, 20), timeout=60, what="some completions")
            kill(stack, "bonus")
            await eventually(lambda: _refused(traffic), timeout=30, what="completions to be refused with 503")

            async def opened() -> bool:
                return (await link_state(client, stack.url("hiring"), "bonus"))["breaker"] == "open"

            await eventually(opened, timeout=20, what="hiring's breaker on bonus to open")
            open_tasks = await _open_tasks(stack)
            await restart(stack, "bonus")
            done = len(traffic.ack.outcomes)
            await eventually(lambda: _acked(traffic, done + 20), timeout=60, what="completions after bonus is back")
        finally:
            ack = await traffic.stop()
    result = await reconcile(stack.urls, ack)
    for problem in ("lost", "doubled", "wrong_amount", "unexpected", "server_errors"):
        assert result[problem] == [], f"{problem}: {result[problem][:5]}"
    assert result["statuses"].get("complete 503", 0) + result["statuses"].get("fail 503", 0) > 0
    assert open_tasks > 0 or result["statuses"].get("complete 503", 0) > 0  # refused completions wrote nothing
    print({k: v for k, v in result.items() if k != "statuses"}, result["statuses"])


async def _acked(traffic: Traffic, n: int) -> bool:
    return len(traffic.ack.outcomes) >= n


async def _refused(traffic: Traffic) -> bool:
    return traffic.ack.statuses.get("complete 503", 0) + traffic.ack.statuses.get("fail 503", 0) > 0


async def _query(stack: Background, database: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(with_database(stack.database_url, database)))
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def _open_tasks(stack: Background) -> int:
    return int((await _query(stack, "hiring", "SELECT count(*) FROM tasks WHERE status = 'open'"))[0][0])


async def test_hiring_down_the_consumer_blocks_and_credits_right_once_it_is_back(stack: Background) -> None:
    """COMM-060 after: the bonus worker asks hiring for each completed task's rating."""
    traffic = Traffic(stack.urls, workers=2)
    await traffic.start()
    try:
        for name in ("comm-070", "comm-040", "comm-060"):
            result = await asyncio.to_thread(stack.run, "services.playbooks", "run", name, timeout=400)
            assert result.returncode == 0, result.stdout[-3000:]
    finally:
        ack = await traffic.stop()
    state = read_state(stack.data_dir)
    assert state is not None and state.processes["bonus-worker"].pid
    worker = state.processes["bonus-worker"].pid
    os.kill(worker, signal.SIGSTOP)  # completions pile up on the topic while the worker is held
    traffic = Traffic(stack.urls, workers=2, seed=11)
    traffic.ack = ack
    await traffic.start()
    try:
        before = len(ack.outcomes)
        await eventually(lambda: _acked(traffic, before + 15), timeout=60, what="completions while bonus is held")
    finally:
        ack = await traffic.stop()
    kill(stack, "hiring")
    os.kill(worker, signal.SIGCONT)
    async with httpx.AsyncClient(timeout=10) as client:
        some_task = next(iter(ack.outcomes))

        async def blocked() -> bool:
            health = (await client.get(f"{stack.url('bonus-worker')}/metrics")).text
            return "consumer_blocked{group=\"bonus\"} 1.0" in health

        await eventually(blocked, timeout=30, what="the bonus worker to block on hiring")
        fallback = (await client.get(f"{stack.url('bonus')}/tasks/{some_task}")).json()
        assert (fallback["rating_source"], fallback["rating"], fallback["stale"]) == ("fallback", None, True)
        await restart(stack, "hiring")
    result = await reconcile(stack.urls, ack)
    for problem in ("lost", "doubled", "wrong_amount", "unexpected", "server_errors"):
        assert result[problem] == [], f"{problem}: {result[problem][:5]}"
    assert await read_records(stack.bootstrap, ["dlq.bonus.hiring.task-results"]) == []  # blocked, not dead-lettered
    print({k: v for k, v in result.items() if k != "statuses"})
