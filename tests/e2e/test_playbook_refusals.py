"""Every unsafe step is refused with its reason and its fix, and nothing changes: each test makes the unsafe
situation happen on a live stack (started as `make run-bg` starts it), runs the playbook step through the CLI,
and checks the refusal and the state. Then it fixes the cause and the step goes through.

The tests build on each other, in file order: one stack moves through the playbooks as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from eventbus.db import plain_url, with_database
from eventbus.envelope import encode, kafka_headers, new_envelope
from eventbus.stack.state import read_state
from tests.e2e.conftest import REPO, Background, background_stack
from tests.waiting import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    yield from background_stack(tmp_path_factory.mktemp("refusals"))


def playbook(stack: Background, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return stack.run("services.playbooks", *args, timeout=timeout)


async def run(stack: Background, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.playbooks ARGS` (what the make targets call), off the event loop."""
    return await asyncio.to_thread(playbook, stack, *args)


async def flagctl(stack: Background, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(stack.run, "services.flagctl", *args)


async def workers_apply(stack: Background, name: str, value: Any) -> None:
    """Every live bonus worker reports the switch's value in its heartbeat."""
    async def check() -> bool:
        rows = await query(stack, "bonus", "SELECT report FROM instances WHERE role = 'worker' AND stopped_at IS NULL "
                                           "AND last_seen > clock_timestamp() - interval '3 seconds'")
        return bool(rows) and all(orjson.loads(r["report"])["flags"].get(name) == value for r in rows)
    await eventually(check, timeout=20, what=f"the bonus workers to apply {name}={value}")


async def start(stack: Background, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "services.playbooks", *args, cwd=REPO,
                                                env=stack.env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)


async def query(stack: Background, database: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(with_database(stack.database_url, database)))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def flag(stack: Background, name: str) -> Any:
    [row] = await query(stack, name.split(".")[0], "SELECT value FROM flags WHERE name = $1", name)
    return orjson.loads(row["value"])


def worker_pid(stack: Background) -> int:
    state = read_state(stack.data_dir)
    assert state is not None
    pid = state.processes["bonus-worker"].pid
    assert pid is not None
    return pid


async def traffic(stack: Background, completions: int) -> list[str]:
    """A few managers, tasks and completions through the APIs (what the gates need to see)."""
    async with httpx.AsyncClient(timeout=10) as client:
        managers = []
        for i in range(3):
            r = await client.post(f"{stack.url('management')}/managers",
                                  json={"first_name": f"F{i}", "last_name": "L", "account_id": "a"})
            assert r.status_code == 201, r.text
            managers.append(r.json()["manager_id"])
        for i in range(completions):
            r = await client.post(f"{stack.url('management')}/tasks",
                                  json={"creator_id": managers[i % 3], "title": f"[Area] T{i}"})
            task = r.json()["task_id"]

            async def done(task: str = task) -> bool:
                r = await client.post(f"{stack.url('hiring')}/tasks/{task}/complete",
                                      json={"candidate_id": str(uuid.uuid4())})
                return r.status_code == 200
            await eventually(done, timeout=30, interval=0.1, what=f"hiring to complete {task}")
        return managers


def test_out_of_order_and_unmet_needs_are_refused(stack: Background) -> None:
    early = playbook(stack, "run", "comm-070", "--step", "3")
    assert early.returncode == 2 and "out of order: comm-070 starts at step 1" in early.stdout, early.stdout
    needs = playbook(stack, "run", "us-170")
    assert needs.returncode == 2 and "us-170 needs comm-070 done first" in needs.stdout, needs.stdout
    status = json.loads(playbook(stack, "status", "--json").stdout)
    assert all(r["state"] == "not started" for r in status)  # nothing was started
    plan = playbook(stack, "plan", "us-170")
    assert plan.returncode == 0 and "IRREVERSIBLE" in plan.stdout and "«Удаляем колонки first_name" in plan.stdout


async def test_comm070_refuses_to_go_async_while_bonus_lacks_managers(stack: Background) -> None:
    await traffic(stack, 2)
    assert (await run(stack, "run", "comm-070", "--to", "3")).returncode == 0
    await eventually(lambda: _bonus_knows(stack, 3), timeout=30, what="bonus to learn the managers")
    lost = await query(stack, "bonus", "DELETE FROM managers WHERE id IN (SELECT id FROM managers LIMIT 2) "
                                       "RETURNING id")
    # --wait 10, not 0: the gate first needs step 3's events consumed and committed (its "in flight" part), which
    # on a loaded machine can still be settling; the unknown managers then keep it failing to the end
    refused = await run(stack, "run", "comm-070", "--wait", "10")
    assert refused.returncode == 3, refused.stdout
    assert "2 of" in refused.stdout and "managers are unknown to bonus" in refused.stdout
    assert "blocked: step 4 did nothing" in refused.stdout
    assert await flag(stack, "bonus.manager_source") == "management-api"  # nothing changed
    status = await run(stack, "status", "comm-070")
    assert status.returncode == 3 and "managers are unknown to bonus" in status.stdout
    assert "fix: step 3 publishes" in status.stdout
    # the fix the gate names: undo step 3 and run it again, which publishes every manager again
    rolled = await run(stack, "rollback", "comm-070", "--to", "2")
    assert rolled.returncode == 0, rolled.stdout
    assert await flag(stack, "management.manager_created_version") is None
    done = await run(stack, "run", "comm-070")
    assert done.returncode == 0, done.stdout
    assert await flag(stack, "bonus.manager_source") == "local"
    known = {r["id"] for r in await query(stack, "bonus", "SELECT id FROM managers")}
    assert {r["id"] for r in lost} <= known


async def _bonus_knows(stack: Background, at_least: int) -> bool:
    try:
        return len(await query(stack, "bonus", "SELECT id FROM managers")) >= at_least
    except asyncpg.UndefinedTableError:
        return False


async def test_comm040_refuses_to_switch_the_http_call_off_before_the_consumer_credits(stack: Background) -> None:
    assert (await run(stack, "run", "comm-040", "--to", "3")).returncode == 0
    await traffic(stack, 3)  # step 4 measures the calls since the producer started
    assert (await run(stack, "run", "comm-040", "--to", "4")).returncode == 0
    pid = worker_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # a bonus worker that cannot take the switch (its heartbeat goes stale)
    try:
        refused = await run(stack, "run", "comm-040", "--step", "5")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert refused.returncode == 4, refused.stdout
    assert "cannot tell" in refused.stdout and "stale" in refused.stdout
    assert await flag(stack, "hiring.credit_via_http") is True  # the HTTP path stays on
    assert await flag(stack, "bonus.task_results_consumer") == "apply"  # the action before the wait was done
    done = await run(stack, "run", "comm-040")
    assert done.returncode == 0, done.stdout
    assert await flag(stack, "hiring.credit_via_http") is False


async def test_us170_refuses_to_produce_v2_while_a_bonus_worker_does_not_accept_it(stack: Background) -> None:
    assert (await run(stack, "run", "us-170", "--to", "14")).returncode == 0
    taken_back = await flagctl(stack, "set", "bonus.manager_created_versions", "0,1", "--reason",
                           "test: a worker without v2")
    assert taken_back.returncode == 0, taken_back.stderr

    await workers_apply(stack, "bonus.manager_created_versions", [0, 1])
    refused = await run(stack, "run", "us-170", "--step", "15", "--wait", "0")
    assert refused.returncode == 3, refused.stdout
    assert "accepts ManagerCreated [0, 1], not [2]" in refused.stdout
    assert await flag(stack, "management.manager_created_version") == 1  # still v1
    await flagctl(stack, "set", "bonus.manager_created_versions", "0,1,2", "--reason", "test: fixed")
    done = await run(stack, "run", "us-170", "--step", "15")
    assert done.returncode == 0, done.stdout
    assert await flag(stack, "management.manager_created_version") == 2


async def test_us170_refuses_to_drop_the_names_while_v1_events_are_unconsumed(stack: Background) -> None:
    assert (await run(stack, "run", "us-170", "--to", "18")).returncode == 0
    pid = worker_pid(stack)
    os.kill(pid, signal.SIGSTOP)
    try:
        late = new_envelope("ManagerCreated", 1, {"manager_id": str(uuid.uuid4()), "first_name": "Late",
                                                  "last_name": "Writer", "username": "late.w", "account_id": "a"},
                            producer="management")
        producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("management.managers", encode(late),
                                         key=late["payload"]["manager_id"].encode(),
                                         headers=kafka_headers(late["meta"]))
        finally:
            await producer.stop()
        refused = await run(stack, "run", "us-170", "--step", "19", "--wait", "0")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert refused.returncode == 3, refused.stdout
    assert "records behind" in refused.stdout and "ManagerCreated v0/v1 consumed by bonus" in refused.stdout
    columns = await query(stack, "management", "SELECT column_name FROM information_schema.columns "
                                               "WHERE table_name = 'managers'")
    assert {"first_name", "last_name"} <= {c["column_name"] for c in columns}  # nothing dropped


async def test_two_runs_of_one_playbook_at_once_are_refused(stack: Background) -> None:
    pid = worker_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # us-160 step 2 then waits for the bonus worker to see its revision
    first = await start(stack, "run", "us-160", "--to", "2")
    try:
        async def waiting() -> bool:
            rows = await query(stack, "playbooks", "SELECT s.state FROM playbook_steps s JOIN playbook_runs r "
                                                   "ON r.id = s.run_id WHERE r.playbook = 'us-160' AND number = 2")
            return bool(rows) and rows[0]["state"] == "running"
        await eventually(waiting, timeout=60, what="the first run to wait at step 2")
        second = await run(stack, "run", "us-160")
        assert second.returncode == 2, second.stdout
        assert "refused: us-160 is being run by playbook-runner" in second.stdout
    finally:
        os.kill(pid, signal.SIGCONT)
        out, _ = await asyncio.wait_for(first.communicate(), 120)
    assert first.returncode == 0, out.decode()


async def test_the_runner_killed_mid_backfill_resumes_and_fills_each_row_once(stack: Background) -> None:
    assert (await run(stack, "run", "us-160", "--to", "7")).returncode == 0
    creator = uuid.uuid4()
    await query(stack, "bonus", "INSERT INTO tasks (id, creator_id, title) SELECT gen_random_uuid(), $1, "
                                "'[Area ' || i || '] Task ' || i FROM generate_series(1, 300000) i", creator)
    runner = await start(stack, "run", "us-160", "--step", "8")

    async def part_done() -> bool:
        [row] = await query(stack, "bonus", "SELECT count(*) FILTER (WHERE knowledge_area IS NOT NULL) AS split, "
                                            "count(*) AS n FROM tasks WHERE creator_id = $1", creator)
        return 0 < row["split"] < row["n"]

    try:
        await eventually(part_done, timeout=60, interval=0.05, what="the backfill to be under way")
    finally:
        runner.kill()  # SIGKILL: no cleanup, its lock goes with its connection
        await asyncio.wait_for(runner.wait(), 30)
    [state] = await query(stack, "playbooks", "SELECT s.state, s.attempts FROM playbook_steps s JOIN playbook_runs r "
                                              "ON r.id = s.run_id WHERE r.playbook = 'us-160' AND number = 8")
    assert state["state"] == "running"
    resumed = await run(stack, "run", "us-160", "--step", "8")
    assert resumed.returncode == 0, resumed.stdout
    [row] = await query(stack, "bonus", "SELECT count(*) FILTER (WHERE knowledge_area = 'Area ' || "
                                        "substring(title from '[0-9]+$')) AS right, count(*) AS n FROM tasks "
                                        "WHERE creator_id = $1", creator)
    assert row["right"] == row["n"] == 300_000  # every row split once, from its own title
    [state] = await query(stack, "playbooks", "SELECT s.state, s.attempts FROM playbook_steps s JOIN playbook_runs r "
                                              "ON r.id = s.run_id WHERE r.playbook = 'us-160' AND number = 8")
    assert (state["state"], state["attempts"]) == ("done", 2)
