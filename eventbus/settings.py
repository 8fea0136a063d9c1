"""Settings every process shares. Each process subclasses :class:`CommonSettings` once."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus.db import with_database

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The embedded stack's defaults; `make run` exports the real values to every child process.
EMBEDDED_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/postgres"
EMBEDDED_BOOTSTRAP_SERVERS = "127.0.0.1:19092"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    #: Server-level URL; each service uses its own database on that server (see `url_of`).
    database_url: str = EMBEDDED_DATABASE_URL
    kafka_bootstrap_servers: str = EMBEDDED_BOOTSTRAP_SERVERS
    registry_url: str = "http://127.0.0.1:8000"
    #: Where the schema client falls back to when the registry is unreachable.
    schemas_dir: Path = REPO_ROOT / "schemas"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    #: the other services' HTTP APIs, for the synchronous links (COMM-040, COMM-060, COMM-070)
    management_url: str = "http://127.0.0.1:8001"
    hiring_url: str = "http://127.0.0.1:8002"
    bonus_url: str = "http://127.0.0.1:8003"
    #: every synchronous call: its timeout, and the breaker's failure threshold and reset timeout (seed 001)
    link_timeout: float = 1.0
    link_breaker_threshold: int = 3
    link_breaker_reset: float = 5.0
    #: how often a process re-reads its flags and writes its heartbeat (LISTEN/NOTIFY wakes it sooner)
    control_interval: float = 1.0
    #: One database's own URL, overriding `database_url`'s server (e.g. BONUS_DATABASE_URL)
    management_database_url: str | None = None
    hiring_database_url: str | None = None
    bonus_database_url: str | None = None
    registry_database_url: str | None = None
    playbooks_database_url: str | None = None

    #: READ_DATABASE_URL: a server URL for read-only queries that may run on a standby (the bonus balance and
    #: ledger); unset: `url_of`. The replicated embedded stack sets the standby-first multi-host URL
    read_database_url: str | None = None

    def read_url_of(self, database: str) -> str:
        """Where one service's read-only queries go: READ_DATABASE_URL's server, else `url_of`."""
        return with_database(self.read_database_url, database) if self.read_database_url else self.url_of(database)

    def url_of(self, database: str) -> str:
        """The URL of one service's database: its own override, else `database_url`'s server."""
        override = getattr(self, f"{database}_database_url", None)
        return override or with_database(self.database_url, database)
