"""Embedded PostgreSQL and Tansu, started once per test session; a fresh migrated database per use."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from eventbus.migrate import upgrade
from eventbus.schemas.client import SchemaClient
from eventbus.stack.broker import TansuBroker
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.topics import TopicSpec, ensure_topics, partitions_of
from tests.waiting import eventually_sync, free_port

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port())
    pg.start()
    yield pg
    pg.stop(mode="immediate")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    broker = TansuBroker(free_port(), tmp_path_factory.mktemp("tansu") / "tansu.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def bootstrap(kafka: TansuBroker) -> str:
    return kafka.bootstrap_servers


_counter = itertools.count()


@pytest.fixture(scope="session")
def make_database(pg_server: EmbeddedPostgres) -> Callable[..., str]:
    """`make_database("bonus")` -> URL of a new database at every head of the bonus tree (the final state);
    `make_database("bonus", "comm070_2_managers", ...)` -> at those revisions (and their ancestors) only."""

    def make(tree: str, *targets: str) -> str:
        database = f"t_{tree}_{next(_counter)}"
        url = ""
        # Alembic's env runs its own event loop: keep it off the test's loop
        with ThreadPoolExecutor(1) as pool:
            for target in targets or ("heads",):
                url = pool.submit(upgrade, tree, pg_server.url, target, database=database).result()
        return url

    return make


@pytest.fixture
def schemas() -> SchemaClient:
    """The schema client on disk only (the registry service has its own tests)."""
    return SchemaClient(None, fallback_dir=SCHEMAS)


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_topics(bootstrap: str, *specs: TopicSpec) -> None:
    await ensure_topics(bootstrap, specs)


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 20.0) -> list[ConsumerRecord]:
    """Read `count` records from every partition of `topic` from the beginning (no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"read {len(records)} of {count} records from {topic} in {timeout}s")
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()




@pytest.fixture
async def aclose_later() -> AsyncIterator[list[object]]:
    """Things with `aclose()`/`close()` to close after the test."""
    things: list[object] = []
    yield things
    for thing in reversed(things):
        closer = getattr(thing, "aclose", None) or getattr(thing, "close", None)
        if closer is not None:
            result = closer()
            if asyncio.iscoroutine(result):
                await result


REGISTRY_TOKEN = "registry-test-token"


@pytest.fixture(scope="module")
def registry_url(pg_server: EmbeddedPostgres, make_database: Callable[[str], str],
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The registry service as a process on a fresh database (seeded from schemas/)."""
    with ThreadPoolExecutor(1) as pool:  # keep Alembic's loop off any running loop
        db_url = pool.submit(make_database, "registry").result()
    port = free_port()
    log = tmp_path_factory.mktemp("registry") / "registry.log"
    env = {**os.environ, "DATABASE_URL": pg_server.url, "REGISTRY_DATABASE_URL": db_url,
           "REGISTRY_PORT": str(port), "REGISTRY_TOKEN": REGISTRY_TOKEN, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "registry"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   cwd=Path(__file__).resolve().parents[2])
    url = f"http://127.0.0.1:{port}"
    try:
        eventually_sync(lambda: _up(url), timeout=30, what=f"the registry (log {log})")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, to kill and start again."""
    pg = EmbeddedPostgres(tmp_path / "pg", free_port())
    pg.start()
    yield pg
    pg.stop(mode="immediate")
