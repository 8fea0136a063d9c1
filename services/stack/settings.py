"""How `python -m services.stack` runs: which servers, which data folder, which host and ports."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus.settings import REPO_ROOT


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    embedded_pg_port: int = 54329
    embedded_kafka_port: int = 19092
    stack_data_dir: Path = REPO_ROOT / ".data"
    host: str = "127.0.0.1"
    registry_port: int = 8000
    management_port: int = 8001
    hiring_port: int = 8002
    bonus_port: int = 8003
    management_relay_port: int = 8101
    hiring_relay_port: int = 8102
    bonus_worker_port: int = 8103
    hiring_worker_port: int = 8104
    ready_timeout: float = 120.0
    #: 1 on the embedded broker; 3 on the compose cluster (min.insync.replicas=2)
    topic_replication_factor: int = 1

    @property
    def registry_url(self) -> str:
        return f"http://{self.host}:{self.registry_port}"
