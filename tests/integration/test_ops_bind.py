"""Relays and workers serve /health and /metrics on HOST only, like the APIs: started with HOST=127.0.0.2,
they answer there and nothing listens on 127.0.0.1 (Faust's own default binds every interface)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from eventbus.db import ensure_database, plain_url, with_database
from eventbus.outbox import ddl as outbox_ddl
from eventbus.stack.postgres import EmbeddedPostgres
from tests.waiting import eventually_sync, free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.2"


async def _database(server_url: str, ddl: list[str]) -> str:
    name = f"bind_{uuid.uuid4().hex[:8]}"
    await ensure_database(server_url, name)
    conn = await asyncpg.connect(plain_url(with_database(server_url, name)))
    try:
        for statement in ddl:
            await conn.execute(statement)
    finally:
        await conn.close()
    return with_database(server_url, name)


def _refused(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code in (200, 503)
    except httpx.HTTPError:
        return False


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=REPO, env={**os.environ, "HOST": HOST, **env}, stdout=out,
                                stderr=subprocess.STDOUT)


def test_a_relay_listens_on_host_only(pg_server: EmbeddedPostgres, bootstrap: str, tmp_path: Path,
                                      started: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    url = asyncio.run(_database(pg_server.url, outbox_ddl.create_v1()))
    started.append(_start([sys.executable, "-m", "eventbus.outbox.main", "bindtest", f"bind-{port}:1"],
                          {"BINDTEST_DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                           "RELAY_PORT": str(port)}, tmp_path / "relay.log"))
    eventually_sync(lambda: _answers(f"http://{HOST}:{port}/health"), timeout=30,
                    what=f"the relay's /health on {HOST} (log {tmp_path / 'relay.log'})")
    assert _refused("127.0.0.1", port)


# the Faust app of `build_app` with a stand-in processor (its /health then answers 503: no database)
WORKER = """
from types import SimpleNamespace
from eventbus.consumer.worker import WorkerSettings, build_app, run_worker

class StandIn:
    breaker = SimpleNamespace(state=SimpleNamespace(label="closed"))
    async def pool(self):
        raise ConnectionError("stand-in processor: no database")

settings = WorkerSettings()
run_worker(build_app(group="{group}", settings=settings, sources=[], processor=StandIn()), settings)
"""


def test_a_worker_listens_on_host_only(bootstrap: str, tmp_path: Path,
                                       started: list[subprocess.Popen[bytes]]) -> None:
    port = free_port()
    group = f"bind{port}"
    started.append(_start([sys.executable, "-c", WORKER.format(group=group)],
                          {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "WORKER_PORT": str(port),
                           "CONSUMER_DATA_DIR": str(tmp_path / "faust")}, tmp_path / "worker.log"))
    eventually_sync(lambda: _answers(f"http://{HOST}:{port}/health"), timeout=60,
                    what=f"the worker's /health on {HOST} (log {tmp_path / 'worker.log'})")
    assert _refused("127.0.0.1", port)
