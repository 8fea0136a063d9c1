"""`Stack`: the servers and processes of one running system, started in order, kept running (`supervise`)
and stopped together."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eventbus.migrate import ALL_DATABASES
from eventbus.stack.broker import TansuBroker, port_open
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.stack.replication import ReplicatedPostgres
from eventbus.stack.state import ProcessState, ServerState
from eventbus.stack.supervision import BrokerUnit, NodeUnit, PostgresUnit, ServiceUnit, Supervision, Unit
from eventbus.stack.supervisor import StartupError, Supervisor
from eventbus.stack.target import address
from services import stages
from services.stack.settings import StackSettings
from services.stack.topology import BROKER_BOUND, declare_topics, initialise, planned, port_clashes, process_specs
from services.stack.topology import registry_url as planned_registry_url


@dataclass
class Stack:
    settings: StackSettings
    postgres: EmbeddedPostgres | None = None
    #: EMBEDDED_PG_HA: the primary and its synchronous standby (then `postgres` is None)
    replicated: ReplicatedPostgres | None = None
    broker: TansuBroker | None = None
    supervisor: Supervisor | None = None
    database_url: str = ""
    bootstrap_servers: str = ""
    registry_url: str = ""
    supervision: Supervision | None = None
    #: when each embedded server was started (epoch seconds)
    server_started_at: dict[str, float] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.settings.stack_data_dir / "logs"

    def urls(self) -> dict[str, str]:
        assert self.supervisor is not None
        return {name: f"http://{self.settings.host}:{spec.port}" for name, spec in self.supervisor.specs.items()}

    def up(self, progress: bool = True) -> float:
        """Start everything; return the seconds it took to be ready."""
        started = time.monotonic()
        say = print if progress else (lambda *_a, **_k: None)
        s = self.settings
        self.check_ports()
        s.stack_data_dir.mkdir(parents=True, exist_ok=True)
        if s.database_url:
            self.database_url = s.database_url
            say(f"PostgreSQL: external ({redact(self.database_url)})")
        elif s.embedded_pg_ha:
            self.replicated = ReplicatedPostgres(s.stack_data_dir, s.pg_ports, host=s.host)
            for name in self.replicated.nodes:
                self.server_started_at[name] = time.time()
            self.database_url = self.replicated.start()
            roles = ", ".join(f"{name} {self.replicated.role(n)} on {n.port}"
                              for name, n in self.replicated.nodes.items())
            say(f"PostgreSQL: embedded, replicated ({roles}; synchronous commit, automatic failover), "
                f"{self.database_url}")
        else:
            self.postgres = EmbeddedPostgres(s.stack_data_dir / "pg", s.embedded_pg_port)
            self.server_started_at["postgresql"] = time.time()
            self.database_url = self.postgres.start()
            say(f"PostgreSQL: embedded, {self.database_url} (data in {self.postgres.data_dir})")
        if s.kafka_bootstrap_servers:
            self.bootstrap_servers = s.kafka_bootstrap_servers
            say(f"Kafka: external ({self.bootstrap_servers})")
        else:
            self.broker = TansuBroker(s.embedded_kafka_port, self.log_dir / "tansu.log")
            self.server_started_at["kafka"] = time.time()
            self.bootstrap_servers = self.broker.start()
            say(f"Kafka: embedded Tansu, {self.bootstrap_servers} (memory storage)")
        created = initialise(self.database_url, self.bootstrap_servers, s.topic_replication_factor, s.stack_start)
        say(f"databases migrated: {', '.join(ALL_DATABASES)}; topics declared ({len(created)} new)")
        self.registry_url = planned_registry_url(s)
        self.supervisor = Supervisor(self.log_dir, {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "REGISTRY_URL": self.registry_url,
            # where each API is, for the services that call another one (CommonSettings.<service>_url)
            **{f"{p.name.upper()}_URL": f"http://{s.host}:{p.port}" for p in planned(s)
               if p.name in ("management", "hiring", "bonus")},
            "HOST": s.host,
            "PYTHONUNBUFFERED": "1",
            "REGISTRY_SEED_VERSIONS": stages.registry_seed(s.stack_start),
            # read-only queries on the standby while it answers (it applied every acknowledged commit)
            **({"READ_DATABASE_URL": self.replicated.read_url} if self.replicated is not None else {}),
        })
        specs = process_specs(s)
        self.supervisor.start(specs[0])
        self.supervisor.wait_healthy(["registry"], s.ready_timeout)  # the others validate against it
        for spec in specs[1:]:
            self.supervisor.start(spec)
        self.supervisor.wait_healthy([sp.name for sp in specs[1:]], s.ready_timeout)
        return time.monotonic() - started

    def check_ports(self) -> None:
        """Refuse to start on a port planned twice, or taken: a process that cannot listen exits, and the
        stack would have taken the /health of whatever answers there (another stack?) for its own."""
        s = self.settings
        clashes = port_clashes(s)
        if clashes:
            raise StartupError("; ".join(clashes))
        taken = [f"{p.port} ({p.name}; {p.port_variable} moves it)" for p in planned(s) if port_open(s.host, p.port)]
        if taken:
            raise StartupError(f"ports already taken on {s.host}: {', '.join(taken)}. Is another stack running "
                               "(`make status`, `make stop`)?")

    def supervise(self, should_stop: Callable[[], bool], on_change: Callable[[], None]) -> None:
        """Keep every process and embedded server running until `should_stop()` (eventbus.stack.supervision),
        serving `restart` requests; `on_change` writes the state file."""
        assert self.supervisor is not None
        units: list[Unit] = []
        if self.postgres is not None:
            units.append(PostgresUnit(self.postgres))
        if self.replicated is not None:
            self.replicated.say = lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
            units += [NodeUnit(self.replicated, name) for name in self.replicated.nodes]
        if self.broker is not None:
            # it comes back empty: the topics again (not those a playbook deleted for good), then the workers
            units.append(BrokerUnit(self.broker, after_restart=self._declare_topics, restart_after=BROKER_BOUND))
        units += [ServiceUnit(self.supervisor, spec, self.settings.host) for spec in self.supervisor.specs.values()]
        for unit in units:
            unit.started_at = self.server_started_at.get(unit.name, unit.started_at)
        self.supervision = Supervision(units, self.settings.restart_policy(), on_change=on_change,
                                       say=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", flush=True))
        asyncio.run(self.supervision.run(should_stop, self.settings.stack_data_dir))

    async def _declare_topics(self) -> str:
        created = await declare_topics(self.database_url, self.bootstrap_servers,
                                       self.settings.topic_replication_factor)
        return f"topics declared again ({len(created)} created)"

    def processes(self) -> dict[str, ProcessState]:
        """Each process's URL and pid, its exit code while it is down, and what the supervision knows of it,
        for the state file."""
        if self.supervisor is None:
            return {}
        watching = self.supervision
        if watching is None:
            exited = self.supervisor.exited()
            return {name: ProcessState(url, self.supervisor.processes[name].pid, exited.get(name))
                    for name, url in self.urls().items()}
        return {name: ProcessState(url, watching.pid(name), watching.records[name].exited, **watching.snapshot(name))
                for name, url in self.urls().items()}

    def servers(self) -> dict[str, ServerState]:
        found = {}
        watching = self.supervision
        if self.database_url:
            pid = self.postgres.postmaster_pid() if self.postgres is not None else None
            life = watching.snapshot("postgresql") if watching is not None and self.postgres is not None else {}
            if life:
                assert watching is not None
                pid = watching.pid("postgresql")
            if self.replicated is not None:
                primary = self.replicated.primary()
                pid = primary.postmaster_pid() if primary is not None else None
            found["postgresql"] = ServerState(address("database", self.database_url),
                                              self.postgres is not None or self.replicated is not None, pid, **life)
            pair = self.replicated
            for name, node in (pair.nodes if pair is not None else {}).items():
                assert pair is not None
                life = watching.snapshot(name) if watching is not None else {}
                node_pid = watching.pid(name) if watching is not None else node.postmaster_pid()
                found[name] = ServerState(f"{node.host}:{node.port}", True, node_pid,
                                          role=pair.role(node), **life)
        if self.bootstrap_servers:
            pid = self.broker.process.pid if self.broker is not None and self.broker.process is not None else None
            life = watching.snapshot("kafka") if watching is not None and self.broker is not None else {}
            if life:
                assert watching is not None
                pid = watching.pid("kafka")
            found["kafka"] = ServerState(self.bootstrap_servers, self.broker is not None, pid, **life)
        return found

    def down(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.replicated is not None:
            self.replicated.stop()


def redact(url: str) -> str:
    _, sep, tail = url.partition("@")
    return ("postgresql://***@" + tail) if sep else url
