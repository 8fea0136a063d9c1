"""Publishing without rewriting outbox rows (`outbox_pending` / `outbox_published`, Alembic revision
backbone_2_outbox_pending): the migration carries the state over both ways, the triggers keep every row in exactly
one of the two tables whoever writes, and a relay facing a database without them says what to run and publishes
once it has been run, live."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic import command

from eventbus.db import create_engine, plain_url
from eventbus.migrate import alembic_config, downgrade
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec
from tests.integration.conftest import make_topics, read_topic
from tests.integration.outbox_helpers import COLUMNS, backlog_rows, bulk_insert, running_relay, write, writer
from tests.waiting import eventually, free_port

pytestmark = pytest.mark.integration

BEFORE_TRACKING = "backbone_1_broker_loss"
REPO = Path(__file__).resolve().parents[2]


async def _tables(url: str) -> tuple[dict[int, int], dict[int, object]]:
    """(pending id -> lease partition, published id -> published_at)"""
    conn = await asyncpg.connect(plain_url(url))
    try:
        pending = {r["id"]: r["lease_partition"] for r in await conn.fetch("SELECT * FROM outbox_pending")}
        published = {r["id"]: r["published_at"] for r in await conn.fetch("SELECT * FROM outbox_published")}
        return pending, published
    finally:
        await conn.close()


def _upgrade(tree: str, url: str, revision: str) -> None:
    command.upgrade(alembic_config(tree, url), revision)


@pytest.mark.parametrize("tree", ["management", "hiring"])
async def test_the_migration_carries_published_and_unpublished_rows_over_and_back(
        make_database: Callable[..., str], schemas: SchemaClient, tree: str) -> None:
    url = make_database(tree, BEFORE_TRACKING)
    rows, _ = backlog_rows(writer("t.tracking", schemas), [(str(uuid.uuid4()), i) for i in range(30)])
    await bulk_insert(url, rows)
    conn = await asyncpg.connect(plain_url(url))
    try:
        # the earlier code's state: 20 published (at distinct times), 10 waiting
        await conn.execute("UPDATE outbox SET published_at = now() - make_interval(secs => id) WHERE id <= 20")
        before = {r["id"]: r["published_at"] for r in await conn.fetch("SELECT id, published_at FROM outbox")}
        partitions = {r["id"]: r["lease_partition"] for r in await conn.fetch("SELECT id, lease_partition FROM outbox")}
    finally:
        await conn.close()

    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own loop
        pool.submit(_upgrade, tree, url, "backbone@head").result()
    pending, published = await _tables(url)
    assert pending == {i: partitions[i] for i, at in before.items() if at is None}
    assert published == {i: at for i, at in before.items() if at is not None}

    with ThreadPoolExecutor(1) as pool:
        pool.submit(downgrade, tree, url, BEFORE_TRACKING).result()
    conn = await asyncpg.connect(plain_url(url))
    try:
        after = {r["id"]: r["published_at"] for r in await conn.fetch("SELECT id, published_at FROM outbox")}
        assert not await conn.fetchval("SELECT to_regclass('outbox_pending') IS NOT NULL")
    finally:
        await conn.close()
    assert after == before


async def test_every_insert_and_delete_keeps_each_row_in_exactly_one_table(
        make_database: Callable[..., str], schemas: SchemaClient) -> None:
    url = make_database("management")
    engine = create_engine(url)
    w = writer("t.tracking", schemas)
    one = [await write(engine, w, str(uuid.uuid4()), seq=i) for i in range(3)]  # the writer, row by row
    await engine.dispose()
    rows, _ = backlog_rows(w, [(str(uuid.uuid4()), i) for i in range(50)])
    await bulk_insert(url, rows)  # COPY, many rows in one statement
    conn = await asyncpg.connect(plain_url(url))
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
        assert len(ids) == len(one) + 50
        pending, published = await _tables(url)
        assert sorted(pending) == ids and not published
        # a row published, then every row of one lease partition deleted by hand (an operator, a playbook)
        await conn.execute("WITH gone AS (DELETE FROM outbox_pending WHERE id = $1 RETURNING id) "
                           "INSERT INTO outbox_published (id) SELECT id FROM gone", ids[0])
        doomed = await conn.fetchval("SELECT lease_partition FROM outbox WHERE id = $1", ids[0])
        await conn.execute("DELETE FROM outbox WHERE lease_partition = $1", doomed)
        left = {r["id"] for r in await conn.fetch("SELECT id FROM outbox")}
        pending, published = await _tables(url)
        assert set(pending) | set(published) == left and not set(pending) & set(published)
        assert ids[0] not in published and len(left) < len(ids)
        # an insert that fails leaves nothing behind in either table
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.copy_records_to_table("outbox", records=[rows[-1]], columns=COLUMNS)
        assert await _tables(url) == (pending, published)
    finally:
        await conn.close()


async def test_a_relay_on_a_database_without_the_tables_names_the_fix_then_publishes_once_migrated(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = make_database("management", BEFORE_TRACKING)
    topic = TopicSpec(unique("outdated"), 1)
    await make_topics(bootstrap, topic)
    engine = create_engine(url)
    written = [await write(engine, writer(topic.name, schemas), str(uuid.uuid4()), seq=i) for i in range(3)]
    await engine.dispose()
    async with running_relay(url, bootstrap, topic) as relay:
        await eventually(lambda: _said(relay, "make migrate"), what="the relay names the fix")
        assert relay.published_total == 0
        with ThreadPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, _upgrade, "management", url, "backbone@head")
        records = await read_topic(bootstrap, topic.name, 3, timeout=30)
        await eventually(lambda: _all_published(url, 3), what="every row in outbox_published")
    assert sorted(dict(r.headers)["event_id"].decode() for r in records) == sorted(written)


def _relay_process(url: str, bootstrap: str, topic: TopicSpec, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELAY_DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "RELAY_PORT": str(port),
           "RELAY_POLL_INTERVAL": "0.5", "RELAY_HEARTBEAT_INTERVAL": "0.3", "RELAY_BACKOFF_BASE": "0.05",
           "RELAY_BACKOFF_CAP": "0.5"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "eventbus.outbox.main", "tracking",
                                 f"{topic.name}:{topic.partitions}"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


async def _said(relay: object, text: str) -> bool:
    return text in (relay.last_error or "")  # type: ignore[attr-defined]


async def _all_published(url: str, n: int) -> bool:
    pending, published = await _tables(url)
    return not pending and len(published) == n


async def test_a_relay_process_reports_the_missing_tables_on_its_health_until_migrated(
        make_database: Callable[..., str], bootstrap: str, schemas: SchemaClient, unique: Callable[[str], str],
        tmp_path: Path) -> None:
    url = make_database("management", BEFORE_TRACKING)
    topic = TopicSpec(unique("health"), 1)
    await make_topics(bootstrap, topic)
    engine = create_engine(url)
    written = await write(engine, writer(topic.name, schemas), str(uuid.uuid4()))
    await engine.dispose()
    port = free_port()
    process = _relay_process(url, bootstrap, topic, port, tmp_path / "relay.log")
    health: dict[str, object] = {}

    async def answers(status: int, outbox_tables: str) -> bool:
        """`/health` answers `status` and its outbox_tables check starts with `outbox_tables` (before the relay has
        looked at its database, /health is 503 for having no pool yet: not what is waited for)."""
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                r = await client.get(f"http://127.0.0.1:{port}/health")
        except httpx.HTTPError:
            return False
        health.clear()
        health.update(r.json())
        checks = health.get("checks")
        return (r.status_code == status and isinstance(checks, dict)
                and str(checks.get("outbox_tables", "")).startswith(outbox_tables))

    try:
        await eventually(lambda: answers(503, "error"), timeout=30, what="the relay's /health says 503 for its tables")
        checks = health["checks"]
        assert isinstance(checks, dict) and checks["database"] == "ok", health
        assert "outbox_pending" in checks["outbox_tables"] and "make migrate" in checks["outbox_tables"], health
        with ThreadPoolExecutor(1) as pool:
            await asyncio.get_running_loop().run_in_executor(pool, _upgrade, "management", url, "backbone@head")
        await eventually(lambda: answers(200, "ok"), timeout=30, what="the relay's /health says 200 once migrated")
        [record] = await read_topic(bootstrap, topic.name, 1, timeout=30)
        assert dict(record.headers)["event_id"].decode() == written
    finally:
        process.terminate()
        process.wait(15)
