"""What the relay benchmark's phases share: the run and its report, bench databases, outbox rows shaped like
OutboxWriter's, the relay as a process, and small waits."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import signal
import statistics
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from eventbus.migrate import upgrade
from eventbus.outbox import OutboxWriter, Route
from eventbus.outbox import writer as outbox_writer
from eventbus.schemas.client import SchemaClient
from eventbus.settings import REPO_ROOT
from eventbus.topics import TopicSpec
from tests.bench.common import say
from tests.integration.outbox_helpers import COLUMNS, EVENT, payload
from tests.waiting import free_port


@dataclass
class Run:
    args: argparse.Namespace
    server_url: str
    bootstrap: str
    workdir: Path
    tag: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # (phase, metric, value, goal/verdict)
    ok: bool = True
    databases: list[str] = field(default_factory=list)

    def report(self, phase: str, metric: str, value: str, goal: str = "", passed: bool | None = None) -> None:
        verdict = "" if passed is None else ("  ok" if passed else "  MISSED")
        self.rows.append((phase, metric, value, goal + verdict))
        say(f"  {phase}: {metric} = {value}{(' (' + goal + verdict + ')') if goal else ''}")

    def check(self, what: str, passed: bool, detail: str = "") -> None:
        self.ok &= passed
        self.report("check", what, detail or ("yes" if passed else "NO"), passed=passed)


# -- the stack and the data ------------------------------------------------------------------------------------


async def new_database(run: Run, phase: str) -> str:
    name = f"bench_relay_{run.tag}_{phase}"
    run.databases.append(name)
    # "heads": every branch of the tree (the outbox is the same at every stage of the service's playbooks)
    return await asyncio.to_thread(upgrade, "management", run.server_url, "heads", database=name)


def writer(topic: str) -> OutboxWriter:
    return OutboxWriter(producer="bench", routes={EVENT: Route(topic, "task_id")},
                        schemas=SchemaClient(None, fallback_dir=REPO_ROOT / "schemas"))


class Rows:
    """Outbox rows exactly as OutboxWriter.add inserts them, on a fixed set of keys."""

    def __init__(self, topic: str, keys: int, rng: random.Random) -> None:
        # murmur2 is pure Python (~20 us): hash each of our few keys once, or generating a million rows
        # would take the CPU the relay is being measured on (this process only)
        if not hasattr(outbox_writer.key_hash, "cache_info"):
            outbox_writer.key_hash = functools.lru_cache(maxsize=None)(outbox_writer.key_hash)
        self.writer = writer(topic)
        self.keys = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(keys)]
        self.rng = rng
        self.seq = 0

    def make(self, n: int) -> tuple[list[tuple[object, ...]], list[str]]:
        rows, ids = [], []
        for _ in range(n):
            envelope = self.writer.envelope(EVENT, 0, payload(self.rng.choice(self.keys), self.seq))
            self.seq += 1
            row = self.writer.row(envelope)
            rows.append(tuple(row[c] for c in COLUMNS))
            ids.append(str(envelope["meta"]["event_id"]))
        return rows, ids


async def copy_rows(conn: asyncpg.Connection, rows: list[tuple[object, ...]], chunk: int = 20_000) -> None:
    for start in range(0, len(rows), chunk):
        await conn.copy_records_to_table("outbox", records=rows[start:start + chunk], columns=COLUMNS)


@dataclass
class RelayProcess:
    process: subprocess.Popen[bytes]
    port: int

    def poll(self) -> int | None:
        return self.process.poll()

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def failures(self) -> int | None:
        """Publish rounds that failed so far (its /health), None when it does not answer."""
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                body = (await client.get(f"http://127.0.0.1:{self.port}/health")).json()
            return int(body["relay"]["failures_total"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None


def relay_process(run: Run, label: str, url: str, topic: TopicSpec, log_level: str = "WARNING",
                  **settings: object) -> RelayProcess:
    """`python -m eventbus.outbox.main` for the bench database at `url`: the relay's service is named like the
    database, so its own URL is found either way (`<SERVICE>_DATABASE_URL`, or DATABASE_URL's server)."""
    service, port = urlsplit(url).path.lstrip("/"), free_port()
    env = {**os.environ, f"{service.upper()}_DATABASE_URL": url, "RELAY_DATABASE_URL": url,
           "DATABASE_URL": run.server_url,
           "KAFKA_BOOTSTRAP_SERVERS": run.bootstrap, "RELAY_PORT": str(port), "LOG_LEVEL": log_level,
           **{f"RELAY_{k.upper()}": str(v) for k, v in settings.items()}}
    with (run.workdir / f"relay-{label}.log").open("ab") as log:
        return RelayProcess(subprocess.Popen(
            [sys.executable, "-m", "eventbus.outbox.main", service, f"{topic.name}:{topic.partitions}"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT), port)


def stop_process(relay: RelayProcess) -> None:
    process = relay.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def all_marked(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM outbox_pending")


async def empty(conn: asyncpg.Connection) -> bool:
    return not await conn.fetchval("SELECT count(*) FROM outbox")


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if len(values) > 1 else values[0]
