"""Settings every process shares. Each process subclasses :class:`CommonSettings` once."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The embedded stack's defaults; `make run` exports the real values to every child process.
EMBEDDED_DATABASE_URL = "postgresql://postgres@127.0.0.1:54329/postgres"
EMBEDDED_BOOTSTRAP_SERVERS = "127.0.0.1:19092"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    #: Server-level URL; each service uses its own database on that server (see `database_url_for`).
    database_url: str = EMBEDDED_DATABASE_URL
    kafka_bootstrap_servers: str = EMBEDDED_BOOTSTRAP_SERVERS
    registry_url: str = "http://127.0.0.1:8000"
    #: Where the schema client falls back to when the registry is unreachable.
    schemas_dir: Path = REPO_ROOT / "schemas"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
