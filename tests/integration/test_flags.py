"""The switches on a real database: audited changes, refusals naming what is allowed, a running process sees a
change within about a second, and a producer's switch splits the outbox exactly at the change even while
writers race it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson
import pytest

from eventbus.control import Control
from eventbus.db import create_engine, plain_url
from eventbus.flags import FlagError, store
from eventbus.flags.cli import main as flag_cli
from eventbus.flags.provider import openfeature_client
from eventbus.outbox import OutboxWriter
from services.flags import BY_NAME, MANAGEMENT
from services.management import handlers
from services.topology import ROUTES
from tests.integration.stages import fetch
from tests.waiting import eventually

pytestmark = pytest.mark.integration
VERSION = BY_NAME["management.manager_created_version"]


@pytest.fixture
def db(make_database: Callable[..., str]) -> str:
    return make_database("management", "us170_1_username")


async def _connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(plain_url(url))


async def test_a_change_is_audited_and_refusals_name_what_is_allowed(db: str) -> None:
    conn = await _connect(db)
    try:
        await store.ensure_defaults(conn, MANAGEMENT)
        change = await store.set_flag(conn, VERSION, 1, by="ops@host", reason="US-170 step 8")
        again = await store.set_flag(conn, VERSION, 1, by="ops@host", reason="twice")
        with pytest.raises(FlagError, match=r"'3' is not a value of this flag.*allowed: off, 0, 1, 2"):
            VERSION.parse("3")
        with pytest.raises(FlagError, match="a reason is required"):
            await store.set_flag(conn, VERSION, 2, by="ops", reason=" ")
        await store.retire(conn, VERSION, [0], by="playbook", reason="us-170 step 9: the v0 producer is removed")
        with pytest.raises(FlagError, match=r"0 was retired 0 \(us-170 step 9: the v0 producer is removed\)"):
            await store.set_flag(conn, VERSION, 0, by="ops", reason="go back")
        with pytest.raises(FlagError, match="switch it away before retiring"):
            await store.retire(conn, VERSION, [1], by="playbook", reason="too early")
        audit = await conn.fetch("SELECT old_value, new_value, changed_by, reason, outbox_boundary FROM flag_changes "
                                 "WHERE reason NOT LIKE 'retired %'")
    finally:
        await conn.close()
    assert change.changed and (change.old, change.new) == (None, 1) and not again.changed
    assert [(orjson.loads(a["old_value"]), orjson.loads(a["new_value"]), a["changed_by"], a["reason"])
            for a in audit] == [(None, 1, "ops@host", "US-170 step 8")]  # one row: the unchanged set wrote none
    assert audit[0]["outbox_boundary"] == 0  # an empty outbox


def test_the_cli_refuses_unknown_names_and_wrong_values_naming_the_allowed_ones(
        db: str, capsys: pytest.CaptureFixture[str]) -> None:
    server = db.rsplit("/", 1)[0] + "/postgres"
    assert flag_cli(MANAGEMENT, ["--database", server, "set", "management.nope", "1", "--reason", "x"]) == 2
    assert "unknown switch 'management.nope'; known: management.manager_created_version" in capsys.readouterr().err
    assert flag_cli(MANAGEMENT, ["--database", server, "set", "management.task_titles", "both", "--reason", "x"]) == 2
    assert "allowed: combined, split" in capsys.readouterr().err


async def test_a_running_process_sees_a_change_within_about_a_second(db: str) -> None:
    control = Control(plain_url(db), name="test", role="api", specs=MANAGEMENT, interval=5.0)  # poll: 5 s
    await control.start()
    client = openfeature_client(control.flags, "test-management")
    try:
        assert client.get_string_value("management.task_titles", "?") == "combined"
        assert control.switches.value("management.manager_created_version") is None  # off, through OpenFeature
        conn = await _connect(db)
        try:
            changed_at = time.monotonic()
            await store.set_flag(conn, BY_NAME["management.task_titles"], "split", by="t", reason="t")
        finally:
            await conn.close()

        async def seen() -> bool:
            return control.switches.value("management.task_titles") == "split"

        await eventually(seen, timeout=3, what="the change to reach the process (LISTEN/NOTIFY, not the 5 s poll)")
        print(f"flag change -> seen by the process: {(time.monotonic() - changed_at) * 1000:.0f} ms")
        heartbeat = await fetch(db, "SELECT report FROM instances WHERE instance_id = $1", control.instance_id)
        assert orjson.loads(heartbeat[0]["report"])["name"] == "test"
        assert client.get_boolean_value("management.task_titles", False) is False  # wrong type: the default
    finally:
        await control.stop()
    [stopped] = await fetch(db, "SELECT stopped_at FROM instances WHERE instance_id = $1", control.instance_id)
    assert stopped["stopped_at"] is not None


async def test_the_cut_over_is_exact_while_writers_race_the_switch(db: str) -> None:
    """32 writers create managers while the version switches 0 -> 1 -> 2: every ManagerCreated row at or below
    each change's recorded boundary is of the version before it, every row above it of the version after."""
    control = Control(plain_url(db), name="writers", role="api", specs=MANAGEMENT)
    await control.start()
    conn = await _connect(db)
    await store.set_flag(conn, VERSION, 0, by="t", reason="start")
    engine = create_engine(db, pool_size=16)
    from eventbus.schemas.client import SchemaClient
    from tests.integration.conftest import SCHEMAS
    outbox = OutboxWriter(producer="management", routes=ROUTES, schemas=SchemaClient(None, fallback_dir=SCHEMAS))
    stop = asyncio.Event()

    async def writer(n: int) -> int:
        made = 0
        while not stop.is_set():
            await handlers.create_manager(engine, outbox, control.switches, control.schema, first_name=f"W{n}",
                                          last_name=f"N{made}", account_id="a", username=None)
            made += 1
        return made

    try:
        writers = [asyncio.create_task(writer(n)) for n in range(32)]
        await asyncio.sleep(0.5)
        changes = []
        for version in (1, 2):
            changes.append(await store.set_flag(conn, VERSION, version, by="t", reason="switch"))
            await asyncio.sleep(0.5)
        stop.set()
        made = sum(await asyncio.gather(*writers))
        rows: list[Any] = await conn.fetch("SELECT id, event_version FROM outbox ORDER BY id")
    finally:
        await conn.close()
        await engine.dispose()
        await control.stop()
    assert made == len(rows) > 100
    b1, b2 = (c.outbox_boundary for c in changes)
    assert b1 is not None and b2 is not None
    assert {r["event_version"] for r in rows if r["id"] <= b1} == {0}
    assert {r["event_version"] for r in rows if b1 < r["id"] <= b2} == {1}
    assert {r["event_version"] for r in rows if r["id"] > b2} == {2}
