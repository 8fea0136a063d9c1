"""Run one consumer group's Faust worker: `serve(group, database, sources, handlers)`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from eventbus.consumer.dlq import DeadLetterWriter
from eventbus.consumer.metrics import ConsumerMetrics
from eventbus.consumer.processor import BatchProcessor, Handler
from eventbus.consumer.worker import WorkerSettings, build_app, run_worker, wait_for_topics
from eventbus.db import database_url_for, plain_url
from eventbus.logs import setup_logging
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec


def serve(group: str, database: str, sources: list[TopicSpec], handlers: Iterable[Handler]) -> None:
    settings = WorkerSettings()
    setup_logging(settings.log_level, f"{group}-worker")
    asyncio.run(wait_for_topics(settings, group, sources))
    processor = BatchProcessor(
        group=group,
        dsn=plain_url(database_url_for(settings.database_url, database)),
        schemas=SchemaClient(settings.registry_url, fallback_dir=settings.schemas_dir),
        handlers=handlers,
        dlq=DeadLetterWriter(settings.kafka_bootstrap_servers, group),
        metrics=ConsumerMetrics(group),
        config=settings.processor_config(),
    )
    run_worker(build_app(group=group, settings=settings, sources=sources, processor=processor), settings)
