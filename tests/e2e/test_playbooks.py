"""From seed 004's "before" state to its final state, live: the five playbooks run through `python -m
services.playbooks` (what `make playbook-run` calls) against a stack started as `make run-bg` starts it, while
a load generator drives the APIs; then every acknowledged request is reconciled exactly, and the final state
is checked as the seed describes it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eventbus.consumer.replay.read import read_records
from eventbus.db import plain_url, with_database
from services.flags import FINAL
from services.traffic import Traffic, reconcile
from tests.e2e.conftest import Background, background_stack
from tests.waiting import eventually

pytestmark = pytest.mark.e2e
ORDER = ["comm-070", "comm-040", "comm-060", "us-160", "us-170"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    yield from background_stack(tmp_path_factory.mktemp("playbooks"))


async def _query(stack: Background, database: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(plain_url(with_database(stack.database_url, database)))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _columns(stack: Background, database: str, table: str) -> set[str]:
    rows = await _query(stack, database, "SELECT column_name FROM information_schema.columns WHERE table_name = $1",
                        table)
    return {r["column_name"] for r in rows}


async def _tables(stack: Background, database: str) -> set[str]:
    rows = await _query(stack, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows}


async def _topics(stack: Background) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _registered(stack: Background, event: str, version: int) -> bool:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{stack.url('registry')}/catalog/{event}/{version}")).status_code == 200


async def test_the_five_playbooks_move_the_live_system_from_before_to_after_under_traffic(
        stack: Background, tmp_path: Path) -> None:
    # -- the "before" state -----------------------------------------------------------------------------------
    assert "username" not in await _columns(stack, "management", "managers")
    assert "knowledge_area" not in await _columns(stack, "management", "tasks")
    assert "managers" not in await _tables(stack, "bonus")  # COMM-070: bonus asks management
    assert {"task_ratings", "pending_credits"} <= await _tables(stack, "bonus")  # COMM-060 on events
    assert [await _registered(stack, "TaskCreated", v) for v in (0, 1)] == [True, False]
    assert [await _registered(stack, "ManagerCreated", v) for v in (0, 1, 2)] == [True, False, False]
    assert not await _registered(stack, "TaskCompleted", 0)  # COMM-040: hiring calls bonus
    flags = {r["name"]: r["value"] for r in json.loads(stack.run("services.flagctl", "list", "--json").stdout)}
    assert (flags["hiring.credit_via_http"], flags["bonus.manager_source"], flags["bonus.rating_source"]) == (
        "true", "management-api", "events")
    before = stack.run("services.playbooks", "status")
    assert before.returncode == 5 and before.stdout.count("not started") == 5, before.stdout

    # -- the five playbooks under traffic -------------------------------------------------------------------------
    traffic = Traffic(stack.urls, workers=3)
    await traffic.start()
    durations: dict[str, float] = {}
    transcripts: dict[str, str] = {}
    try:
        await _outcomes(traffic, 5, "outcomes acknowledged in the before state")  # traffic there first
        for name in ORDER:
            started = time.monotonic()
            result = await asyncio.to_thread(stack.run, "services.playbooks", "run", name, timeout=600)
            durations[name] = time.monotonic() - started
            transcripts[name] = result.stdout + result.stderr
            assert result.returncode == 0, f"{name} did not finish:\n{transcripts[name][-6000:]}"
            assert result.stdout.rstrip().endswith(f"{name}: done"), transcripts[name][-3000:]
        await _outcomes(traffic, len(traffic.ack.outcomes) + 5, "outcomes acknowledged in the final state")
    finally:
        ack = await traffic.stop()
    (tmp_path / "transcripts.txt").write_text("\n\n".join(f"== {n} ({durations.get(n, 0):.1f} s)\n{t}"
                                                          for n, t in transcripts.items()))
    print({n: round(d, 1) for n, d in durations.items()})

    # -- every acknowledged request reflected exactly once ------------------------------------------------------
    result = await reconcile(stack.urls, ack)
    print({k: v for k, v in result.items() if k != "statuses"}, result["statuses"])
    assert result["acknowledged_outcomes"] > 100, result
    for problem in ("lost", "doubled", "wrong_amount", "unexpected", "balances_off", "unknown_tasks", "server_errors"):
        assert result[problem] == [], f"{problem}: {result[problem][:5]}"
    assert not any(k.endswith(" 500") for k in result["statuses"]), result["statuses"]

    # -- the final state, as the seed says ------------------------------------------------------------------------
    status = stack.run("services.playbooks", "status", "--json")
    assert status.returncode == 0 and all(r["state"] == "done" for r in json.loads(status.stdout))
    assert {"first_name", "last_name"}.isdisjoint(await _columns(stack, "management", "managers"))
    assert {"first_name", "last_name"}.isdisjoint(await _columns(stack, "bonus", "managers"))
    assert "username" in await _columns(stack, "bonus", "managers")
    assert {"task_ratings", "pending_credits", "task_results_seen"}.isdisjoint(await _tables(stack, "bonus"))
    flags = {r["name"]: r["value"] for r in json.loads(stack.run("services.flagctl", "list", "--json").stdout)}
    from services.flags import BY_NAME
    assert {n: flags[n] for n in FINAL} == {n: BY_NAME[n].render(v) for n, v in FINAL.items()}
    assert not await _registered(stack, "TaskCreated", 0) and await _registered(stack, "TaskCreated", 1)
    assert not await _registered(stack, "TaskRating", 0)
    topics = await _topics(stack)
    assert "hiring.task-ratings" not in topics and "dlq.bonus.hiring.task-ratings" not in topics
    dlqs = [t for t in topics if t.startswith(("dlq.", "parking."))]
    assert await read_records(stack.bootstrap, dlqs) == []  # zero dead letters
    workers = await _query(stack, "bonus", "SELECT report FROM instances WHERE role = 'worker' AND stopped_at IS "
                                          "NULL AND last_seen > clock_timestamp() - interval '3 seconds'")
    reports = [orjson.loads(w["report"]) for w in workers]
    assert reports and all(r["accepts"]["ManagerCreated"] == [2] and r["accepts"]["TaskCreated"] == [1]
                           and r["accepts"]["TaskRating"] == [] and "hiring.task-ratings" not in r["consumes"]
                           for r in reports), reports
    await _cut_overs_are_exact(stack)


async def _cut_overs_are_exact(stack: Background) -> None:
    """Each producer switch recorded the outbox id where the new version starts: between two switches every
    row of the event is of the version switched to, before the first one every row is of the first value."""
    event = {"management.manager_created_version": "ManagerCreated", "management.task_created_version": "TaskCreated"}
    checked = 0
    for flag, name in event.items():
        changes = await _query(stack, "management", "SELECT old_value, new_value, outbox_boundary FROM flag_changes "
                                                    "WHERE name = $1 AND old_value IS DISTINCT FROM new_value "
                                                    "ORDER BY id", flag)
        rows = await _query(stack, "management", "SELECT id, event_version FROM outbox WHERE event_name = $1", name)
        assert changes, flag
        bounds = [c["outbox_boundary"] for c in changes] + [float("inf")]
        epochs = [(float("-inf"), bounds[0], orjson.loads(changes[0]["old_value"]))]
        epochs += [(bounds[i], bounds[i + 1], orjson.loads(c["new_value"])) for i, c in enumerate(changes)]
        for low, high, version in epochs:
            inside = [r["event_version"] for r in rows if low < r["id"] <= high]
            assert all(v == version for v in inside), (flag, low, high, version, sorted(set(inside)))
            checked += len(inside)
    assert checked > 0


async def test_a_restarted_stack_keeps_the_state_the_playbooks_left(stack: Background) -> None:
    """`make run` on a data folder that has run playbooks keeps its state (and does not declare the deleted
    topic again); the event path still credits once."""
    stopped = stack.run("services.stack", "stop", timeout=90)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    started = stack.run("services.stack", "run-bg", timeout=240, **{k: str(v) for k, v in stack.ports.items()})
    assert started.returncode == 0, started.stdout + started.stderr
    status = stack.run("services.playbooks", "status", "--json")
    assert status.returncode == 0 and all(r["state"] == "done" for r in json.loads(status.stdout))
    flags = {r["name"]: r["value"] for r in json.loads(stack.run("services.flagctl", "list", "--json").stdout)}
    assert flags["bonus.rating_source"] == "hiring" and flags["management.manager_created_version"] == "2"
    assert "hiring.task-ratings" not in await _topics(stack)
    assert not await _registered(stack, "TaskCreated", 0)
    await _credits_once(stack)


@pytest.fixture(scope="module")
def final_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    yield from background_stack(tmp_path_factory.mktemp("final"), STACK_START="final")


async def test_start_final_brings_a_fresh_stack_straight_to_the_final_state(final_stack: Background) -> None:
    assert {"first_name", "last_name"}.isdisjoint(await _columns(final_stack, "management", "managers"))
    assert "knowledge_area" in await _columns(final_stack, "bonus", "tasks")
    assert {"task_ratings", "pending_credits"}.isdisjoint(await _tables(final_stack, "bonus"))
    assert all([await _registered(final_stack, "ManagerCreated", 2), await _registered(final_stack, "TaskCreated", 1),
                await _registered(final_stack, "TaskCompleted", 0)])
    flags = {r["name"]: r["value"] for r in json.loads(final_stack.run("services.flagctl", "list", "--json").stdout)}
    from services.flags import BY_NAME
    assert {n: flags[n] for n in FINAL} == {n: BY_NAME[n].render(v) for n, v in FINAL.items()}
    assert "hiring.task-ratings" not in await _topics(final_stack)
    status = final_stack.run("services.playbooks", "status", "--json")
    assert status.returncode == 0 and all(r["state"] == "done" for r in json.loads(status.stdout))
    again = final_stack.run("services.playbooks", "run", "comm-070")
    assert again.returncode == 0 and "comm-070 is done" in again.stdout  # nothing moves it back
    await _credits_once(final_stack)


async def _outcomes(traffic: Traffic, at_least: int, what: str) -> None:
    """Until the traffic has `at_least` acknowledged outcomes. A condition, not a fixed time: a stack that has just
    started publishes the broker's lost window again first, and on a loaded machine that took longer than 5 s."""
    await eventually(lambda: asyncio.sleep(0, len(traffic.ack.outcomes) >= at_least), timeout=120, interval=0.2,
                     what=f"{at_least} {what}")


async def _credits_once(stack: Background) -> None:
    """Traffic in the final state until 10 outcomes are acknowledged: every one credited once."""
    traffic = Traffic(stack.urls, workers=2)
    traffic.use_usernames()
    await traffic.start()
    try:
        await _outcomes(traffic, 10, "outcomes acknowledged after the restart")
    finally:
        ack = await traffic.stop()
    result = await reconcile(stack.urls, ack)
    assert result["acknowledged_outcomes"] > 0
    for problem in ("lost", "doubled", "wrong_amount", "unexpected", "server_errors"):
        assert result[problem] == [], f"{problem}: {result[problem][:5]}"
