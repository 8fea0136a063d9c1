"""What an API process opens once, in its lifespan: engine, schema client, outbox writer, links to other
services, the control loop (flags, schema state, heartbeat) and the probes of /health."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from eventbus.control import Control
from eventbus.db import create_engine, plain_url
from eventbus.flags.provider import Switches
from eventbus.flags.spec import FlagSpec
from eventbus.health import KafkaProbe, Probe
from eventbus.links import Link, LinkMetrics
from eventbus.outbox import OutboxWriter, Route
from eventbus.schemas.client import SchemaClient
from eventbus.settings import CommonSettings


class ServiceResources:
    def __init__(
        self,
        settings: CommonSettings,
        database: str,
        *,
        producer: str | None = None,
        routes: Mapping[str, Route] | None = None,
        flags: Iterable[FlagSpec] = (),
        links: Mapping[str, str] | None = None,
        capabilities: Iterable[str] = (),
        report: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings = settings
        database_url = settings.url_of(database)
        self.engine = create_engine(database_url)
        read_url = settings.read_url_of(database)
        #: for read-only queries that may see a standby (READ_DATABASE_URL); the engine itself when unset
        self.read_engine = create_engine(read_url, pool_size=5) if read_url != database_url else self.engine
        self.schemas = SchemaClient(settings.registry_url, fallback_dir=settings.schemas_dir)
        self._outbox = (
            OutboxWriter(producer=producer, routes=routes or {}, schemas=self.schemas) if producer else None
        )
        self.kafka = KafkaProbe(settings.kafka_bootstrap_servers)
        self.metrics = CollectorRegistry()
        link_metrics = LinkMetrics(self.metrics)
        self.links = {name: Link(name, url, timeout=settings.link_timeout,
                                 failure_threshold=settings.link_breaker_threshold,
                                 reset_timeout=settings.link_breaker_reset, metrics=link_metrics)
                      for name, url in (links or {}).items()}
        self.capabilities = sorted(capabilities)
        self._report = report
        self.control = Control(plain_url(database_url), name=database, role="api", specs=flags,
                               report=self.report, interval=settings.control_interval)

    @property
    def flags(self) -> Switches:
        """The switches, read through OpenFeature (`value`), or in a transaction (`in_transaction`)."""
        return self.control.switches

    @property
    def schema(self) -> Any:
        return self.control.schema

    @property
    def outbox(self) -> OutboxWriter:
        if self._outbox is None:
            raise RuntimeError("this service has no outbox: pass producer= and routes=")
        return self._outbox

    def link(self, name: str) -> Link:
        return self.links[name]

    def report(self) -> dict[str, Any]:
        body: dict[str, Any] = {"capabilities": self.capabilities,
                                "links": {name: link.status() for name, link in self.links.items()}}
        if self._report is not None:
            body |= self._report()
        return body

    async def start(self) -> ServiceResources:
        await self.control.start()
        return self

    async def _database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    def probes(self) -> dict[str, Probe]:
        return {"database": self._database, "broker": self.kafka}

    def details(self) -> dict[str, Any]:
        """Extra /health body: the instance, its flags and its links' breakers."""
        return {"instance": self.control.instance_id, "flags_version": self.control.flags.version,
                "links": {name: link.status() for name, link in self.links.items()}}

    async def close(self) -> None:
        await self.control.stop()
        for link in self.links.values():
            await link.aclose()
        await self.kafka.close()
        await self.schemas.aclose()
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
