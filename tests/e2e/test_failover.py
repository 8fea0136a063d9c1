"""Two bonus workers in one consumer group; one is SIGKILLed mid-stream; the other takes its partitions
over and every event is applied exactly once (nothing lost, nothing credited twice)."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from eventbus.db import database_url_for, plain_url
from eventbus.envelope import encode, kafka_headers, new_envelope
from eventbus.stack.supervisor import ProcessSpec, python_module
from services.stack import Stack
from services.topology import TASK_RESULTS
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.e2e
EVENTS = 1200
RATE = 300.0  # events/s: the stream is still flowing when the worker dies


def _applied(url: str) -> int:
    """consumer_applied_total of one worker, from its /metrics."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return -1
    return int(sum(float(v) for v in re.findall(r'^consumer_applied_total\{[^}]*\} (\S+)$', text, re.M)))


def _duplicates(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=2).text
    found = re.findall(r'^consumer_duplicates_total\{[^}]*\} (\S+)$', text, re.M)
    return int(float(found[0])) if found else 0


async def _produce(bootstrap: str, task_ids: list[uuid.UUID], creator: uuid.UUID, kill_after: int,
                   kill: object) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        started = time.monotonic()
        for i, task_id in enumerate(task_ids):
            # TaskFailed: a fixed credit; a TaskCompleted would ask hiring for a rating these tasks do not have
            envelope = new_envelope("TaskFailed", 0, {"task_id": str(task_id), "creator_id": str(creator),
                                                         "candidate_id": str(uuid.uuid4())}, producer="e2e")
            await producer.send(TASK_RESULTS.name, key=str(task_id).encode(), value=encode(envelope),
                                headers=kafka_headers(envelope["meta"]))
            if i == kill_after:
                await producer.flush()
                await asyncio.to_thread(kill)  # type: ignore[arg-type]
            await asyncio.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
        await producer.flush()
    finally:
        await producer.stop()


async def _count(url: str, sql: str, *args: object) -> int:
    conn = await asyncpg.connect(plain_url(url))
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


def test_a_killed_worker_hands_its_partitions_over_and_nothing_is_lost_or_doubled(stack: Stack) -> None:
    supervisor = stack.supervisor
    assert supervisor is not None
    first = supervisor.specs["bonus-worker"]
    port = free_port()
    second = ProcessSpec("bonus-worker-2", python_module("services.bonus.worker"), port, {"WORKER_PORT": str(port)})
    supervisor.start(second)
    supervisor.wait_healthy(["bonus-worker-2"], timeout=60)
    url_a, url_b = f"http://127.0.0.1:{first.port}", f"http://127.0.0.1:{port}"
    bonus_db = database_url_for(stack.database_url, "bonus")

    # warm-up: both workers hold partitions once each has applied something (keys spread over 4 partitions)
    creator = uuid.uuid4()
    warm: list[uuid.UUID] = []

    def both_applied_something() -> bool:
        batch = [uuid.uuid4() for _ in range(8)]
        warm.extend(batch)
        asyncio.run(_produce(stack.bootstrap_servers, batch, creator, kill_after=-1, kill=lambda: None))
        return _applied(url_a) > 0 and _applied(url_b) > 0

    joined = time.monotonic()
    try:
        eventually_sync(both_applied_something, timeout=90, interval=0.2,
                        what="both workers to hold partitions (the group rebalanced onto two members)")
    except AssertionError as exc:
        tails = "\n".join(f"--- {n}\n{supervisor.log_tail(n, 40)}" for n in ("bonus-worker", "bonus-worker-2"))
        raise AssertionError(f"{exc}; applied: {_applied(url_a)}, {_applied(url_b)}\n{tails}") from None
    print(f"\nsecond worker applying events {time.monotonic() - joined:.1f}s after it was healthy")

    tasks = [uuid.uuid4() for _ in range(EVENTS)]
    killed_at: list[float] = []

    def kill() -> None:
        assert _applied(url_a) > 0
        supervisor.signal("bonus-worker", signal.SIGKILL)
        killed_at.append(time.monotonic())

    asyncio.run(_produce(stack.bootstrap_servers, tasks, creator, kill_after=EVENTS // 4, kill=kill))
    eventually_sync(lambda: "bonus-worker" in supervisor.exited(), what="the killed worker to be gone")
    all_tasks = warm + tasks

    def applied() -> int:
        return asyncio.run(_count(bonus_db, "SELECT count(*) FROM ledger WHERE manager_id = $1", creator))

    eventually_sync(lambda: applied() == len(all_tasks), timeout=120,
                    what=f"all {len(all_tasks)} credits after the failover (worker-2 log: "
                         f"{supervisor.log_path('bonus-worker-2')})")
    took = time.monotonic() - killed_at[0]
    credited = asyncio.run(_count(bonus_db, "SELECT count(DISTINCT task_id) FROM ledger WHERE manager_id = $1",
                                  creator))
    balance = asyncio.run(_count(bonus_db, "SELECT sum(amount) FROM ledger WHERE manager_id = $1", creator))
    assert credited == len(all_tasks) and balance == 2 * len(all_tasks)  # each task credited exactly once
    assert _applied(url_b) > 0
    print(f"\nfailover: all {len(all_tasks)} events applied {took:.1f}s after SIGKILL; "
          f"worker-2 skipped {_duplicates(url_b)} redelivered duplicates")
    supervisor.stop("bonus-worker-2")
    supervisor.start(first)
    supervisor.wait_healthy(["bonus-worker"], timeout=60)
