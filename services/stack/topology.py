"""Our system as the stack runs it: its processes and their ports, its topics, and what `initialise` prepares."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from eventbus.consumer.dlq import dlq_topic, parking_topic
from eventbus.consumer.worker import WorkerSettings
from eventbus.outbox.main import RelaySettings
from eventbus.stack.supervisor import ProcessSpec, python_module
from eventbus.topics import TopicSpec, ensure_topics
from registry.settings import RegistrySettings
from services import stages
from services.bonus.settings import BonusSettings
from services.hiring.settings import HiringSettings
from services.management.settings import ManagementSettings
from services.stack.settings import StackSettings
from services.topology import BONUS_GROUP, HIRING_GROUP, TASKS, TOPICS


@dataclass(frozen=True)
class Planned:
    name: str
    module: str
    #: the variable the process reads its port from; the stack sets it, so the process listens where planned
    port_variable: str
    port: int


def planned(s: StackSettings) -> list[Planned]:
    """Every process with its port, the registry first (the others validate against it). Each port is read
    from the settings class the process itself uses (so from the same variables, with the same default)."""
    relay, worker = RelaySettings(), WorkerSettings()
    found = [
        Planned("registry", "registry", "REGISTRY_PORT", RegistrySettings().registry_port),
        Planned("management", "services.management", "MANAGEMENT_PORT", ManagementSettings().management_port),
        Planned("hiring", "services.hiring", "HIRING_PORT", HiringSettings().hiring_port),
        Planned("bonus", "services.bonus", "BONUS_PORT", BonusSettings().bonus_port),
        Planned("management-relay", "services.management.relay", "MANAGEMENT_RELAY_PORT", relay.port_for("management")),
        Planned("hiring-relay", "services.hiring.relay", "HIRING_RELAY_PORT", relay.port_for("hiring")),
        Planned("bonus-worker", "services.bonus.worker", "BONUS_WORKER_PORT", worker.port_for(BONUS_GROUP)),
        Planned("hiring-worker", "services.hiring.worker", "HIRING_WORKER_PORT", worker.port_for(HIRING_GROUP)),
    ]
    return [Planned(p.name, p.module, p.port_variable, s.ports.get(p.name, p.port)) for p in found]


PROCESS_NAMES = ("registry", "management", "hiring", "bonus", "management-relay", "hiring-relay", "bonus-worker",
                 "hiring-worker")


def process_specs(s: StackSettings) -> list[ProcessSpec]:
    specs = []
    for p in planned(s):
        env = {p.port_variable: str(p.port)}
        if p.name.endswith("-relay"):
            # one relay per outbox in this stack: a restarted relay takes its own leases back at once
            env["RELAY_INSTANCE_ID"] = f"{p.name}@{socket.gethostname()}:{s.stack_data_dir.name}"
        specs.append(ProcessSpec(p.name, python_module(p.module), p.port, env))
    return specs


def registry_url(s: StackSettings) -> str:
    return f"http://{s.host}:{next(p.port for p in planned(s) if p.name == 'registry')}"


def port_clashes(s: StackSettings) -> list[str]:
    """Two listeners on one port, each as a sentence naming the variables that move them."""
    listeners = [(p.name, p.port, p.port_variable) for p in planned(s)]
    if not s.database_url:
        listeners.append(("embedded PostgreSQL", s.embedded_pg_port, "EMBEDDED_PG_PORT"))
        if s.embedded_pg_ha:
            listeners.append(("embedded PostgreSQL standby", s.pg_ports[1], "EMBEDDED_PG_STANDBY_PORT"))
    if not s.kafka_bootstrap_servers:
        listeners.append(("embedded Kafka", s.embedded_kafka_port, "EMBEDDED_KAFKA_PORT"))
    clashes: list[str] = []
    seen: dict[int, tuple[str, str]] = {}
    for name, port, variable in listeners:
        if port in seen:
            other, other_variable = seen[port]
            clashes.append(f"{other} and {name} would both listen on port {port}: set {other_variable} or {variable} "
                           "(is RELAY_PORT or WORKER_PORT set in this environment? they are for one process each)")
        else:
            seen[port] = (name, variable)
    return clashes


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


#: the processes whose Kafka clients cannot survive a broker that lost its state: a running aiokafka consumer
#: keeps its old position on a recreated topic and sees nothing new until it restarts (measured on Tansu).
#: The relays' producers and the APIs' broker checks reconnect by themselves.
BROKER_BOUND = ("bonus-worker", "hiring-worker")


async def declare_topics(database_url: str, bootstrap_servers: str, replication_factor: int) -> list[str]:
    """Declare every topic but those a playbook deleted for good; return the topics created."""
    retired = await stages.retired_topics(database_url)
    wanted = [t for t in all_topics(replication_factor) if not any(r in t.name for r in retired)]
    return await ensure_topics(bootstrap_servers, wanted)


def initialise(database_url: str, bootstrap_servers: str, replication_factor: int,
               start: stages.Start = "before") -> list[str]:
    """Create and migrate the databases (a fresh folder to seed 004's "before" state, or its final state;
    a used one keeps its state) and declare the topics, but those a playbook deleted for good; return the
    topics created."""
    stages.migrate(database_url, start)
    return asyncio.run(declare_topics(database_url, bootstrap_servers, replication_factor))
