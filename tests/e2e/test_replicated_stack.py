"""A stack on the replicated PostgreSQL (EMBEDDED_PG_HA=1), as `make run-bg` starts it: the primary SIGKILLed
twice under traffic through the APIs fails over with no manual step, every acknowledged write is still there
and every acknowledged outcome credited exactly once; and two instances of an API behind the balancer both
answer, and one keeps answering when the other is killed (seed 002)."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
import httpx
import pytest

from eventbus.db import plain_url, with_database
from eventbus.stack.state import StackState, read_state
from services.traffic import Traffic, reconcile
from tests.e2e.conftest import REPO, Background, background_stack
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ha_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    yield from background_stack(tmp_path_factory.mktemp("ha-stack"), STACK_START="final", EMBEDDED_PG_HA="1",
                                EMBEDDED_PG_STANDBY_PORT=str(free_port()))


def state_of(stack: Background) -> StackState:
    state = read_state(stack.data_dir)
    assert state is not None
    return state


def node(stack: Background, role: str) -> tuple[str, int]:
    """The node with `role` now: its name and postmaster pid."""
    found = [(name, s.pid) for name, s in state_of(stack).servers.items() if s.role == role and s.pid]
    assert len(found) == 1, state_of(stack).servers
    name, pid = found[0]
    assert pid is not None
    return name, pid


@dataclass
class Prober:
    """New managers, one request at a time: when each was sent and what came back."""

    url: str
    answers: list[tuple[float, float, int, str | None]] = field(default_factory=list)
    running: bool = True

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while self.running:
                sent = time.monotonic()
                try:
                    r = await client.post(f"{self.url}/managers", json={"username": f"ha.{uuid.uuid4().hex[:10]}",
                                                                         "account_id": "ha"})
                    status, manager = r.status_code, (r.json().get("manager_id") if r.status_code == 201 else None)
                except httpx.HTTPError:
                    status, manager = 0, None
                self.answers.append((sent, time.monotonic(), status, manager))
                await asyncio.sleep(0.02)

    def first_write_after(self, moment: float) -> float | None:
        return next((done for sent, done, status, _ in self.answers if sent > moment and status == 201), None)


async def count_on(url: str, database: str, sql: str) -> int:
    conn = await asyncpg.connect(plain_url(with_database(url, database)), timeout=10)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


@pytest.mark.timeout(600)
async def test_the_primary_killed_twice_under_traffic_fails_over_and_nothing_acknowledged_is_lost(
        ha_stack: Background) -> None:
    urls = {n: p.url for n, p in state_of(ha_stack).processes.items()}
    first_primary, _ = node(ha_stack, "primary")
    traffic = Traffic(urls, workers=4, seed=14, rate=15)
    traffic.use_usernames()
    prober = Prober(urls["management"])
    await traffic.start()
    probing = asyncio.create_task(prober.run())
    lags: list[float] = []
    sampling = asyncio.create_task(sample_lag(state_of(ha_stack).database_url or "", lags))
    failovers = []
    try:
        for _ in range(2):
            await eventually(lambda: asyncio.sleep(0, len(traffic.ack.outcomes) > 30 + 40 * len(failovers)),
                             timeout=120, what="outcomes acknowledged")
            name, pid = node(ha_stack, "primary")
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            # the standby takes over, the old primary comes back as its standby: no manual step
            await eventually(lambda n=name: asyncio.sleep(0, node(ha_stack, "standby")[0] == n), timeout=60,
                             what=f"{name} back as the standby")
            await eventually(lambda k=killed: asyncio.sleep(0, prober.first_write_after(k) is not None), timeout=60,
                             what="a write acknowledged after the kill")
            done = prober.first_write_after(killed)
            assert done is not None
            window = [status for sent, _, status, _ in prober.answers if killed <= sent <= done]
            failovers.append((done - killed, window.count(503), len(window)))
        await eventually(lambda: asyncio.sleep(0, len(traffic.ack.outcomes) > 30 + 40 * len(failovers)),
                         timeout=120, what="outcomes acknowledged after the second failover")
    finally:
        prober.running = False
        sampling.cancel()
        await probing
        ack = await traffic.stop()
    assert node(ha_stack, "primary")[0] == first_primary  # there and back
    result = await reconcile(urls, ack, timeout=180)
    problems = {k: result[k] for k in ("lost", "doubled", "wrong_amount", "unexpected", "balances_off",
                                       "unknown_tasks", "server_errors") if result[k]}
    assert not problems, problems
    # every manager acknowledged to a client is on the primary and on the standby
    acknowledged = [m for _, _, status, m in prober.answers if status == 201]
    statuses = {status for _, _, status, _ in prober.answers}
    assert statuses <= {201, 503, 0}, f"answers while failing over: {statuses}"
    in_list = ",".join(f"'{m}'" for m in acknowledged)
    for role in ("primary", "standby"):
        port = next(s.address for s in state_of(ha_stack).servers.values() if s.role == role)
        url = f"postgresql://postgres@{port}/postgres"
        await eventually(lambda u=url: count_on(u, "management", f"SELECT count(*) = {len(acknowledged)} FROM "
                                                                 f"managers WHERE id IN ({in_list})"),
                         timeout=30, what=f"every acknowledged manager on the {role}")
    print(f"failovers (kill -> first acknowledged write, 503s, requests in the window): {failovers}; "
          f"{result['acknowledged_outcomes']} outcomes and {len(acknowledged)} probe managers acknowledged; "
          f"answers {dict(sorted(result['statuses'].items()))}; replay lag on the standby (ms): "
          f"median {statistics.median(lags or [0]) * 1000:.1f}, max {max(lags or [0]) * 1000:.1f} "
          f"({len(lags)} samples)")


async def sample_lag(url: str, lags: list[float]) -> None:
    """The standby's replay lag as the primary sees it, every 0.2 s (what synchronous commit does not wait for:
    it waits for the flush)."""
    while True:
        try:
            conn = await asyncpg.connect(plain_url(url), timeout=2)
            try:
                while True:
                    lag = await conn.fetchval("SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication")
                    if lag is not None:
                        lags.append(float(lag))
                    await asyncio.sleep(0.2)
            finally:
                conn.terminate()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            await asyncio.sleep(0.2)


async def test_balances_and_ledgers_are_read_on_the_standby(ha_stack: Background) -> None:
    """READ_DATABASE_URL: the bonus API's balance and ledger queries go to the standby while it answers (the
    only connections a standby takes: every other one asks for a writable node)."""
    state = state_of(ha_stack)
    standby = next(s.address for s in state.servers.values() if s.role == "standby")
    standby_url = f"postgresql://postgres@{standby}/postgres"
    sessions = ("SELECT count(*) FROM pg_stat_activity WHERE datname = 'bonus' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()")
    bonus = state.processes["bonus"].url
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(30):
            manager = uuid.uuid4()
            assert (await client.get(f"{bonus}/managers/{manager}/balance")).status_code in (200, 404)
            assert (await client.get(f"{bonus}/managers/{manager}/ledger")).status_code in (200, 404)
    assert await count_on(standby_url, "bonus", sessions) >= 1  # the read engine's pooled connections


@pytest.mark.timeout(300)
async def test_two_instances_behind_the_balancer_both_answer_and_one_carries_on_when_the_other_dies(
        ha_stack: Background, tmp_path: Path) -> None:
    state = state_of(ha_stack)
    first = state.processes["management"].url
    port, listen = free_port(), free_port()
    env = {**ha_stack.env, "DATABASE_URL": state.database_url or "", "KAFKA_BOOTSTRAP_SERVERS":
           state.bootstrap_servers or "", "REGISTRY_URL": state.registry_url or "", "MANAGEMENT_PORT": str(port),
           "SERVER_INSTANCE": "management-2", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "management-2.log").open("wb")
    second = spawn(["services.management"], env, log)
    balancer = spawn(["eventbus.balancer", "--listen", f"127.0.0.1:{listen}", "--backend",
                      first.removeprefix("http://"), "--backend", f"127.0.0.1:{port}"], ha_stack.env, log)
    url = f"http://127.0.0.1:{listen}"
    try:
        await eventually(lambda: _answers(f"http://127.0.0.1:{port}"), timeout=60, what="the second instance")
        await eventually(lambda: _answers(url), timeout=30, what="the balancer")

        async def create(n: int) -> list[tuple[int, str, str | None]]:
            found = []
            for _ in range(n):
                async with httpx.AsyncClient(timeout=10) as client:  # a new connection: the balancer's turn
                    r = await client.post(f"{url}/managers", json={"username": f"lb.{uuid.uuid4().hex[:10]}",
                                                                   "account_id": "lb"})
                found.append((r.status_code, r.headers.get("x-server-instance", ""),
                              r.json().get("manager_id") if r.status_code == 201 else None))
            return found

        both = await create(10)
        assert {s for s, _, _ in both} == {201}
        names = {n for _, n, _ in both}
        assert len(names) == 2 and "management-2" in names, names
        second.send_signal(signal.SIGKILL)
        second.wait(10)
        after = await create(10)
        assert [s for s, _, _ in after] == [201] * 10, after  # the dead one is skipped: no client saw it
        assert {n for _, n, _ in after} == names - {"management-2"}
        async with httpx.AsyncClient(timeout=10) as client:  # what either instance stored, the survivor serves
            for _, _, manager in both + after:
                assert (await client.get(f"{url}/managers/{manager}")).status_code == 200
    finally:
        for process in (second, balancer):
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        log.close()


def spawn(argv: list[str], env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", *argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}/health")).status_code == 200
    except httpx.HTTPError:
        return False
