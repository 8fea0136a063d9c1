"""The Faust worker as a process, for `tests.bench.consumer`: start it, time it, read its metrics.

`python -m tests.bench.consumer_worker GROUP TOPIC PARTITIONS apply` is what `python -m services.bonus.worker`
runs (`eventbus.consumer.main.serve` with the bonus worker's plan: switches, handlers, control loop), for a
bench group and topic; `noop` is the same Faust worker around a processor that applies nothing: what Faust
costs on its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from eventbus.consumer.dlq import DeadLetterWriter
from eventbus.consumer.messages import RawMessage
from eventbus.consumer.processor import BatchProcessor
from eventbus.consumer.worker import WorkerSettings
from eventbus.db import plain_url, with_database
from eventbus.schemas.client import SchemaClient
from eventbus.settings import REPO_ROOT
from eventbus.topics import TopicSpec
from tests.bench import common
from tests.waiting import free_port


@dataclass(frozen=True)
class Launch:
    server_url: str
    bootstrap: str
    database_url: str  # the bonus database this worker applies to
    group: str
    topic: str
    partitions: int
    batch_max: int
    workdir: Path
    timeout: float
    profile: bool = False  # cProfile the worker's main thread into workdir/worker.prof


@dataclass
class WorkerRun:
    steady_seconds: float  # from the first effects seen to all of them
    total_seconds: float  # from spawn
    first_count: int  # effects already visible at the first observation
    cpu_seconds: float  # the worker process's CPU time (all threads) over the steady part
    metrics: dict[str, float]  # its /metrics samples at the end
    steady_metrics: dict[str, float]  # what they grew by over the steady part

    def cpu_note(self, records: int) -> str:
        return f"worker CPU {self.cpu_seconds / max(records, 1) * 1e6:,.0f} us/record"


def cpu_seconds(pid: int) -> float:
    return common.cpu_seconds(pid) or 0.0  # 0 where /proc is missing


async def run_worker(launch: Launch, expected: int, say: Callable[[str], None], *, noop: bool = False) -> WorkerRun:
    """Start the worker and time it until `expected` effects are visible in the database (`noop`: until
    its metrics count `expected` records)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": launch.server_url, "BONUS_DATABASE_URL": launch.database_url,
           "KAFKA_BOOTSTRAP_SERVERS": launch.bootstrap, "REGISTRY_URL": "", "WORKER_PORT": str(port),
           "CONSUMER_DATA_DIR": str(launch.workdir / "faust"), "CONSUMER_BATCH_MAX": str(launch.batch_max),
           "LOG_LEVEL": "WARNING", "PYTHONPATH": str(REPO_ROOT)}
    group, log_path = launch.group, launch.workdir / f"worker-{launch.group}.log"
    conn = await asyncpg.connect(launch.database_url)
    with log_path.open("wb") as log:
        spawned = time.perf_counter()
        profiling = ["-m", "cProfile", "-o", str(launch.workdir / "worker.prof")] if launch.profile else []
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *profiling, "-m", "tests.bench.consumer_worker", group, launch.topic,
            str(launch.partitions), "noop" if noop else "apply",
            stdout=log, stderr=asyncio.subprocess.STDOUT, cwd=REPO_ROOT, env=env, start_new_session=True)
    try:
        first_at, first_count, first_cpu, first_metrics, shown = None, 0, 0.0, {}, spawned
        while True:
            if noop:
                count = int((await scrape(port, group)).get("consumer_received_total", 0))
            else:
                count = await conn.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1", group)
            now = time.perf_counter()
            if count and first_at is None:
                first_at, first_count, first_cpu = now, count, cpu_seconds(proc.pid)
                first_metrics = await scrape(port, group)
                say(f"    first {'records' if noop else 'effects'} after {now - spawned:.1f}s (startup, group join)")
            if count >= expected:
                assert first_at is not None
                metrics = await scrape(port, group)
                if not metrics:
                    say("    cannot read the worker's /metrics")
                steady = {name: value - first_metrics.get(name, 0.0) for name, value in metrics.items()}
                return WorkerRun(now - first_at, now - spawned, first_count, cpu_seconds(proc.pid) - first_cpu,
                                 metrics, steady)
            if proc.returncode is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the worker exited with {proc.returncode}; log {log_path}:\n{tail}")
            if now - spawned > launch.timeout:
                raise TimeoutError(f"the worker applied {count} of {expected} in {launch.timeout}s; log {log_path}")
            if now - shown >= 2:
                shown = now
                say(f"    {count:,}/{expected:,}")
            await asyncio.sleep(0.1)  # polling costs the worker (/metrics) or PostgreSQL (count(*)) too
    finally:
        await conn.close()
        await stop_process(proc)


async def scrape(port: int, group: str) -> dict[str, float]:
    """The worker's samples for the group from its /metrics page; empty when it does not answer."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
            response.raise_for_status()
    except httpx.HTTPError:
        return {}
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.labels.get("group") == group:
                samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class NoopProcessor(BatchProcessor):
    """Counts and acks, applies nothing."""

    async def process(self, messages: list[RawMessage]) -> None:
        self.metrics.received.inc(len(messages))
        self.metrics.batch_size.observe(len(messages))


def main(group: str, topic: str, partitions: int, mode: str) -> None:
    from eventbus.consumer import worker
    from eventbus.consumer.main import WorkerPlan, serve
    from eventbus.logs import setup_logging
    from services.bonus.consumers import BonusConsumers
    from services.bonus.worker import BonusWorkerSettings
    from services.flags import BONUS as FLAGS

    sources = [TopicSpec(topic, partitions)]
    if mode == "apply":  # services.bonus.worker.main, on the bench's group and topic
        bonus = BonusWorkerSettings()

        def plan(control: Any, links: Any) -> WorkerPlan:
            consumers = BonusConsumers(control.switches, control.schema, bonus.credit_rule(), links["hiring"])
            return WorkerPlan(sources, consumers.handlers())

        serve(group, "bonus", bonus, FLAGS, plan, links={"hiring": bonus.hiring_url})
        return
    settings = WorkerSettings()
    setup_logging(settings.log_level, f"{group}-worker")
    asyncio.run(worker.wait_for_topics(settings, group, sources))
    processor = NoopProcessor(group=group, dsn=plain_url(with_database(settings.database_url, "postgres")),
                              schemas=SchemaClient(None), handlers=[],
                              dlq=DeadLetterWriter(settings.kafka_bootstrap_servers, group))
    worker.run_worker(worker.build_app(group=group, settings=settings, sources=sources, processor=processor),
                      settings)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
