"""A stack that heals itself: on a stack started as `make run-bg` starts it (in seed 004's final state, every link
on events), SIGKILL an API, a relay, a worker, the embedded PostgreSQL and the embedded broker, and each comes back
healthy with nobody touching it: restarts counted and the last exit recorded in the state file and `status`.

After the broker (memory storage: it comes back empty) the topics are declared again, but the one a playbook
deleted for good; the Faust workers are restarted, the relays and APIs reconnect by themselves, and an event
produced through the APIs is applied. A process that keeps dying is reported crash-looping and left down until
the operator restarts it with a fixed environment. Each recovery time is printed (`pytest -s`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventbus.stack.state import ProcessState, ServerState, StackState, read_state
from services.stack.topology import all_topics
from tests.e2e.conftest import Background, background_stack
from tests.waiting import eventually_sync

pytestmark = pytest.mark.e2e

APIS = ("registry", "management", "hiring", "bonus")
RELAYS = ("management-relay", "hiring-relay")
WORKERS = ("bonus-worker", "hiring-worker")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    yield from background_stack(tmp_path_factory.mktemp("healing"), STACK_START="final")


def state(stack: Background) -> StackState:
    found = read_state(stack.data_dir)
    assert found is not None, "the stack is gone"
    return found


def entry(stack: Background, name: str) -> ProcessState | ServerState:
    current = state(stack)
    return current.processes.get(name) or current.servers[name]


def healthy(stack: Background, name: str) -> bool:
    current = state(stack)
    if name in current.processes:
        try:
            return httpx.get(f"{current.processes[name].url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    host, _, port = current.servers[name].address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def back(stack: Background, name: str, old_pid: int, restarts: int) -> bool:
    now = entry(stack, name)
    return now.pid not in (None, old_pid) and now.restarts == restarts and now.state == "running" \
        and healthy(stack, name)


def kill_and_wait(stack: Background, name: str, timeout: float = 60) -> tuple[ProcessState | ServerState, float]:
    """SIGKILL `name`; wait until another pid of it is healthy; its state entry then, and the seconds it took."""
    before = entry(stack, name)
    assert before.pid is not None and before.state == "running", before
    killed = time.monotonic()
    os.kill(before.pid, signal.SIGKILL)
    eventually_sync(lambda: back(stack, name, before.pid, before.restarts + 1),  # type: ignore[arg-type]
                    timeout=timeout, interval=0.05, what=f"{name} to be healthy again")
    took = time.monotonic() - killed
    after = entry(stack, name)
    print(f"\n{name}: SIGKILL -> healthy again in {took:.2f} s (the stack measured {after.recovered_in} s)")
    assert (after.last_exit, after.last_exit_code, after.crash_looping) == ("killed by SIGKILL", -9, False), after
    assert after.started_at is not None and after.started_at > time.time() - took - 1
    return after, took


def status(stack: Background, *args: str) -> tuple[int, str]:
    result = stack.run("services.stack", "status", *args, timeout=60)
    return result.returncode, result.stdout


def all_healthy(stack: Background) -> bool:
    return status(stack)[0] == 0


def line_of(out: str, name: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"  {name} "))


def credit_through_the_apis(stack: Background) -> float:
    """A manager and a task, the task completed: the credit lands (TaskCreated -> hiring worker, TaskCompleted ->
    bonus worker). The seconds it took."""
    started = time.monotonic()
    with httpx.Client(timeout=10) as client:
        manager = client.post(f"{stack.url('management')}/managers",
                              json={"username": f"heal.{uuid.uuid4().hex[:8]}", "account_id": "e2e"})
        assert manager.status_code == 201, manager.text
        manager_id = manager.json()["manager_id"]
        task = client.post(f"{stack.url('management')}/tasks",
                           json={"creator_id": manager_id, "title": "Heal", "knowledge_area": "Ops"})
        assert task.status_code == 201, task.text
        task_id = task.json()["task_id"]
        eventually_sync(lambda: client.get(f"{stack.url('hiring')}/tasks/{task_id}").status_code == 200,
                        timeout=60, interval=0.1, what="hiring to learn the task (TaskCreated)")
        done = client.post(f"{stack.url('hiring')}/tasks/{task_id}/complete", json={"candidate_id": str(uuid.uuid4())})
        assert done.status_code == 200, done.text

        def credited() -> bool:
            balance = client.get(f"{stack.url('bonus')}/managers/{manager_id}/balance")
            return balance.status_code == 200 and balance.json()["balance"] == 10

        eventually_sync(credited, timeout=60, interval=0.1, what="the credit (TaskCompleted)")
    return time.monotonic() - started


@pytest.mark.parametrize("name", ["management", "hiring-relay", "bonus-worker"])
def test_a_killed_process_comes_back_by_itself(stack: Background, name: str) -> None:
    others = {n: p.pid for n, p in state(stack).processes.items() if n != name}
    after, took = kill_and_wait(stack, name)
    assert {n: p.pid for n, p in state(stack).processes.items() if n != name} == others  # only it restarted
    eventually_sync(lambda: all_healthy(stack), timeout=30, what="status to be healthy")
    out = status(stack)[1]
    assert "killed by SIGKILL" in line_of(out, name) and f"{after.pid}" in line_of(out, name)
    # healthy is not yet working: a relay waits for its predecessor's leases to expire (RELAY_LEASE_TTL), a
    # worker for its group to notice the dead member (the session timeout)
    print(f"{name}: events flow again {took + credit_through_the_apis(stack):.2f} s after the kill")


def test_killed_postgresql_comes_back_on_its_data_and_every_process_reconnects(stack: Background) -> None:
    pids = {n: (p.pid, p.restarts) for n, p in state(stack).processes.items()}
    kill_and_wait(stack, "postgresql")
    started = time.monotonic()
    eventually_sync(lambda: all_healthy(stack), timeout=60, what="every process healthy again")
    print(f"postgresql back -> every process healthy: {time.monotonic() - started:.2f} s")
    # nobody had to restart them: their pools and LISTEN connections reconnect
    assert {n: (p.pid, p.restarts) for n, p in state(stack).processes.items()} == pids
    print(f"event path after postgresql came back: credited in {credit_through_the_apis(stack):.2f} s")
    # the operator can restart it too, and is told which overrides are in force
    restarted = stack.run("services.stack", "restart", "postgresql", timeout=120)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert "postgresql: no environment overrides in force" in restarted.stdout
    assert entry(stack, "postgresql").last_exit == "stopped: restarted by the operator"


def test_killed_broker_comes_back_empty_topics_are_declared_and_events_flow(stack: Background) -> None:
    before = state(stack).processes
    kill_and_wait(stack, "kafka")
    started = time.monotonic()
    # the workers are stopped while it is down and started once the topics are declared again; nothing else is
    for name in WORKERS:
        eventually_sync(lambda n=name: back(stack, n, before[n].pid, before[n].restarts + 1),  # type: ignore[misc]
                        timeout=60, interval=0.1, what=f"{name} restarted after the broker")
        assert entry(stack, name).last_exit == "stopped: kafka went down"
    print(f"kafka back -> workers restarted and healthy: {time.monotonic() - started:.2f} s")
    eventually_sync(lambda: all_healthy(stack), timeout=60, what="every process healthy again")
    after = state(stack).processes
    for name in (*APIS, *RELAYS):  # they reconnect by themselves
        assert (after[name].pid, after[name].restarts) == (before[name].pid, before[name].restarts), name
    topics = asyncio.run(_topics(stack.bootstrap))
    wanted = {t.name for t in all_topics()}
    retired = {t for t in wanted if "hiring.task-ratings" in t}  # COMM-060 deleted it for good (START=final)
    assert retired and wanted - retired <= topics and not retired & topics, topics
    took = credit_through_the_apis(stack)
    print(f"event path after the broker came back: credited in {took:.2f} s")


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_a_process_that_keeps_dying_is_crash_looping_and_left_down_until_fixed(stack: Background) -> None:
    name = "hiring-relay"
    before = entry(stack, name)
    started = time.monotonic()
    broken = stack.run("services.stack", "restart", name, "--env", "RELAY_BATCH_SIZE=oops", timeout=180)
    took = time.monotonic() - started
    print(f"\n{name} with a broken environment: crash-looping after {took:.1f} s")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"{name}: environment overrides in force: RELAY_BATCH_SIZE=oops (given now)" in broken.stdout
    assert f"{name} is crash-looping (exited 1)" in broken.stderr
    looping = entry(stack, name)
    # the operator's restart, then 5 automatic ones (0.5, 1, 2, 4, 8 s apart); a 6th would be more than 5 in 60 s
    assert (looping.state, looping.crash_looping, looping.last_exit, looping.last_exit_code) == (
        "crash-looping", True, "exited 1", 1)
    assert looping.restarts == before.restarts + 6 and looping.overrides == {"RELAY_BATCH_SIZE": "oops"}
    code, out = status(stack)
    assert code == 1
    assert "CRASH-LOOPING (exited 1; not restarted any more)" in line_of(out, name)
    assert f"{name} is crash-looping: the stack stopped restarting it" in out and "RELAY_BATCH_SIZE=oops" in out
    as_json = status(stack, "--json")[1]
    assert '"crash_looping": true' in as_json
    log = (stack.data_dir / "logs" / "stack.log").read_text()
    assert log.count(f"{name} is CRASH-LOOPING") == 1
    assert (entry(stack, name).pid, entry(stack, name).restarts) == (looping.pid, looping.restarts)  # left down
    # the fix: restart it without the bad variable
    fixed = stack.run("services.stack", "restart", name, "--unset", "RELAY_BATCH_SIZE", timeout=120)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"{name}: no environment overrides in force" in fixed.stdout
    now = entry(stack, name)
    assert (now.state, now.crash_looping, now.overrides) == ("running", False, {})
    eventually_sync(lambda: all_healthy(stack), timeout=30, what="status to be healthy")


def test_restart_knows_the_servers_and_refuses_an_unknown_name(stack: Background) -> None:
    refused = stack.run("services.stack", "restart", "nope", timeout=60)
    assert refused.returncode == 2
    assert "known: bonus, bonus-worker, hiring, hiring-relay, hiring-worker, management, management-relay, " \
           "registry, postgresql, kafka" in refused.stderr


def test_status_exits_0_when_healthy_and_3_once_the_stack_stopped(stack: Background, tmp_path: Path) -> None:
    code, out = status(stack)
    assert code == 0 and out.splitlines()[-1] == "all 10 healthy", out
    header = out.splitlines()[1].split()
    assert header == ["NAME", "ADDRESS", "PID", "HEALTH", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    assert stack.run("services.stack", "stop", timeout=90).returncode == 0
    assert status(stack)[0] == 3
