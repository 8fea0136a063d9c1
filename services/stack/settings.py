"""How `python -m services.stack` runs: which servers, which data folder, which host.

The processes' ports are not here: each comes from the settings class of the process that listens on it
(see `services.stack.topology.planned`), so the stack and a process started on its own agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus.settings import EMBEDDED_BOOTSTRAP_SERVERS, EMBEDDED_DATABASE_URL
from eventbus.stack.state import DEFAULT_DATA_DIR
from eventbus.stack.supervision import RestartPolicy


def _port(address: str) -> int:
    port = urlsplit(address if "//" in address else f"//{address}").port
    assert port is not None, address
    return port


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    #: the embedded servers listen where every process looks by default (eventbus.settings)
    embedded_pg_port: int = _port(EMBEDDED_DATABASE_URL)
    embedded_kafka_port: int = _port(EMBEDDED_BOOTSTRAP_SERVERS)
    #: EMBEDDED_PG_HA=1: two PostgreSQL nodes, a primary and a synchronous standby with automatic failover
    #: (eventbus.stack.replication); the second listens on EMBEDDED_PG_STANDBY_PORT (default: the first's + 1)
    embedded_pg_ha: bool = False
    embedded_pg_standby_port: int | None = None
    #: STACK_DATA_DIR: data, logs and the state file operator commands find the running stack by
    stack_data_dir: Path = DEFAULT_DATA_DIR
    host: str = "127.0.0.1"
    #: per-process port overrides by process name (tests run whole stacks on free ports); operators set
    #: each process's own variable instead (MANAGEMENT_PORT, HIRING_RELAY_PORT, ...)
    ports: dict[str, int] = Field(default_factory=dict)
    #: STACK_START: where a fresh data folder starts, seed 004's "before" state or its "final" one
    stack_start: Literal["before", "final"] = "before"
    ready_timeout: float = 120.0
    #: supervision (eventbus.stack.supervision): restart what exits or stops answering its health check, with
    #: backoff; more than STACK_CRASH_LOOP_RESTARTS restarts in STACK_CRASH_LOOP_WINDOW s: crash-looping, left down
    stack_auto_restart: bool = True
    stack_restart_backoff: float = 0.5
    stack_restart_backoff_max: float = 30.0
    stack_crash_loop_restarts: int = 5
    stack_crash_loop_window: float = 60.0
    stack_health_interval: float = 2.0
    stack_health_timeout: float = 3.0
    #: refused or timed-out /health checks in a row that make the stack restart a process (a 503 never does)
    stack_health_failures: int = 3
    #: 1 on the embedded broker; 3 on the compose cluster (min.insync.replicas=2)
    topic_replication_factor: int = 1

    @property
    def pg_ports(self) -> tuple[int, int]:
        return self.embedded_pg_port, self.embedded_pg_standby_port or self.embedded_pg_port + 1

    def restart_policy(self) -> RestartPolicy:
        return RestartPolicy(
            auto_restart=self.stack_auto_restart, backoff_initial=self.stack_restart_backoff,
            backoff_max=self.stack_restart_backoff_max, crash_loop_restarts=self.stack_crash_loop_restarts,
            crash_loop_window=self.stack_crash_loop_window, health_interval=self.stack_health_interval,
            health_timeout=self.stack_health_timeout, health_failures=self.stack_health_failures,
            start_timeout=self.ready_timeout)
