"""Run one consumer group's Faust worker: `serve(group, database, settings, flags, plan)`.

The worker first reads its switches (which topics it subscribes to can depend on them), then builds its
handlers through `plan`, and runs its control loop (flags, schema state, heartbeat with what it accepts)
inside Faust's event loop, beside the agents.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import faust

from eventbus.consumer.dlq import DeadLetterWriter
from eventbus.consumer.metrics import ConsumerMetrics
from eventbus.consumer.processor import BatchProcessor, Handler
from eventbus.consumer.worker import WorkerSettings, build_app, run_worker, wait_for_topics
from eventbus.control import Control
from eventbus.db import plain_url
from eventbus.flags import store as flag_store
from eventbus.flags.spec import FlagSpec
from eventbus.links import Link, LinkMetrics
from eventbus.logs import setup_logging
from eventbus.resilience import Backoff
from eventbus.resilience.retry import retry
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec

log = logging.getLogger(__name__)


@dataclass
class WorkerPlan:
    """What a worker subscribes to and how it applies each event, given its switches and links."""

    sources: list[TopicSpec]
    handlers: list[Handler]
    capabilities: list[str] = field(default_factory=list)


Planner = Callable[[Control, Mapping[str, Link]], WorkerPlan]


async def read_switches(control: Control) -> None:
    """One read of the flags and the schema before the worker starts; waits for the database."""
    async def read() -> None:
        conn = await asyncpg.connect(control.dsn, timeout=5)
        try:
            await flag_store.ensure_defaults(conn, control.flags.specs.values())
            await control.tick(conn)
        finally:
            await conn.close()

    await retry(read, what="reading the switches", backoff=Backoff(base=0.5, cap=5.0), log=log,
                retry_on=(OSError, asyncpg.PostgresError, TimeoutError))


def serve(group: str, database: str, settings: WorkerSettings, flags: Iterable[FlagSpec], plan: Planner,
          links: Mapping[str, str] | None = None) -> None:
    setup_logging(settings.log_level, f"{group}-worker")
    dsn = plain_url(settings.url_of(database))
    control = Control(dsn, name=f"{group}-worker", role="worker", specs=flags, interval=settings.control_interval)
    asyncio.run(read_switches(control))
    link_metrics = LinkMetrics(ConsumerMetrics(group).registry)
    made = {name: Link(name, url, timeout=settings.link_timeout, failure_threshold=settings.link_breaker_threshold,
                       reset_timeout=settings.link_breaker_reset, metrics=link_metrics)
            for name, url in (links or {}).items()}
    worker_plan = plan(control, made)
    asyncio.run(wait_for_topics(settings, group, worker_plan.sources))
    processor = BatchProcessor(
        group=group,
        dsn=dsn,
        schemas=SchemaClient(settings.registry_url, fallback_dir=settings.schemas_dir),
        handlers=worker_plan.handlers,
        dlq=DeadLetterWriter(settings.kafka_bootstrap_servers, group),
        metrics=ConsumerMetrics(group),
        config=settings.processor_config(),
    )

    def report() -> dict[str, Any]:
        return {"group": group, "accepts": processor.accepted(), "consumes": [s.name for s in worker_plan.sources],
                "capabilities": worker_plan.capabilities,
                "links": {name: link.status() for name, link in made.items()}}

    control.report = report

    def extra(app: faust.App) -> None:
        @app.task  # type: ignore[untyped-decorator]
        async def control_loop() -> None:
            await control.start(wait=0)

        stop_hooks = getattr(app, "stop_hooks", None)
        if stop_hooks is not None:
            stop_hooks.append(control.stop)

    run_worker(build_app(group=group, settings=settings, sources=worker_plan.sources, processor=processor,
                         extra=extra), settings)
