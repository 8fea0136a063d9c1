"""Our system as the stack runs it: its processes, its topics, and what `initialise` prepares."""

from __future__ import annotations

import asyncio

from eventbus.consumer.dlq import dlq_topic, parking_topic
from eventbus.migrate import ALL_DATABASES, upgrade
from eventbus.stack.supervisor import ProcessSpec, python_module
from eventbus.topics import TopicSpec, ensure_topics
from services.stack.settings import StackSettings
from services.topology import BONUS_GROUP, HIRING_GROUP, TASKS, TOPICS


def process_specs(s: StackSettings) -> list[ProcessSpec]:
    """Every process, the registry first (the others validate against it)."""
    return [
        ProcessSpec("registry", python_module("registry"), s.registry_port, {"REGISTRY_PORT": str(s.registry_port)}),
        ProcessSpec("management", python_module("services.management"), s.management_port,
                    {"MANAGEMENT_PORT": str(s.management_port)}),
        ProcessSpec("hiring", python_module("services.hiring"), s.hiring_port, {"HIRING_PORT": str(s.hiring_port)}),
        ProcessSpec("bonus", python_module("services.bonus"), s.bonus_port, {"BONUS_PORT": str(s.bonus_port)}),
        ProcessSpec("management-relay", python_module("services.management.relay"), s.management_relay_port,
                    {"RELAY_PORT": str(s.management_relay_port)}),
        ProcessSpec("hiring-relay", python_module("services.hiring.relay"), s.hiring_relay_port,
                    {"RELAY_PORT": str(s.hiring_relay_port)}),
        ProcessSpec("bonus-worker", python_module("services.bonus.worker"), s.bonus_worker_port,
                    {"WORKER_PORT": str(s.bonus_worker_port)}),
        ProcessSpec("hiring-worker", python_module("services.hiring.worker"), s.hiring_worker_port,
                    {"WORKER_PORT": str(s.hiring_worker_port)}),
    ]


DAY_MS = 86_400_000
#: 7 d on the event topics, 14 d in DLQ and parking topics: 21 d < the workers' 30 d dedupe retention
#: (CONSUMER_DEDUPE_RETENTION_DAYS), so a replay near the end of a DLQ record's life is still deduplicated.
EVENT_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 14 * DAY_MS


def all_topics(replication_factor: int = 1) -> list[TopicSpec]:
    """The event topics and every consumer group's DLQ and parking topics."""
    consumed = [(BONUS_GROUP, t) for t in TOPICS] + [(HIRING_GROUP, TASKS)]
    events = [TopicSpec(t.name, t.partitions, replication_factor, EVENT_RETENTION_MS) for t in TOPICS]
    dlqs = [TopicSpec(name(group, t.name), t.partitions, replication_factor, DLQ_RETENTION_MS)
            for group, t in consumed for name in (dlq_topic, parking_topic)]
    return events + dlqs


def initialise(database_url: str, bootstrap_servers: str, replication_factor: int) -> list[str]:
    """Create and migrate the databases and declare the topics; return the topics created."""
    for database in ALL_DATABASES:
        upgrade(database, database_url)
    return asyncio.run(ensure_topics(bootstrap_servers, all_topics(replication_factor)))
