"""What an API process opens once, in its lifespan: engine, schema client, outbox writer, probes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import text

from eventbus.db import create_engine
from eventbus.health import KafkaProbe, Probe
from eventbus.outbox import OutboxWriter, Route
from eventbus.schemas.client import SchemaClient
from eventbus.settings import CommonSettings


class ServiceResources:
    def __init__(
        self,
        *,
        database_url: str,
        bootstrap_servers: str,
        registry_url: str | None,
        schemas_dir: Path | None,
        producer: str | None = None,
        routes: Mapping[str, Route] | None = None,
    ) -> None:
        self.engine = create_engine(database_url)
        self.schemas = SchemaClient(registry_url, fallback_dir=schemas_dir)
        self._outbox = (
            OutboxWriter(producer=producer, routes=routes or {}, schemas=self.schemas) if producer else None
        )
        self.kafka = KafkaProbe(bootstrap_servers)

    @classmethod
    def of(cls, settings: CommonSettings, database: str, *, producer: str | None = None,
           routes: Mapping[str, Route] | None = None) -> ServiceResources:
        return cls(database_url=settings.url_of(database), bootstrap_servers=settings.kafka_bootstrap_servers,
                   registry_url=settings.registry_url, schemas_dir=settings.schemas_dir, producer=producer,
                   routes=routes)

    @property
    def outbox(self) -> OutboxWriter:
        if self._outbox is None:
            raise RuntimeError("this service has no outbox: pass producer= and routes=")
        return self._outbox

    async def _database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def probes(self) -> dict[str, Probe]:
        return {"database": self._database, "broker": self.kafka}

    async def close(self) -> None:
        await self.kafka.close()
        await self.schemas.aclose()
        await self.engine.dispose()
