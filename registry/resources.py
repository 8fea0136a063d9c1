"""What the registry opens once per process: the database pool and the service over it, seeded from `schemas/`."""

from __future__ import annotations

import logging

import asyncpg

from eventbus.db import plain_url
from eventbus.health import Probe
from registry.seed import catalog, selected
from registry.service import RegistryService
from registry.settings import RegistrySettings
from registry.store import RegistryStore

log = logging.getLogger(__name__)


class RegistryResources:
    def __init__(self, pool: asyncpg.Pool, service: RegistryService) -> None:
        self.pool = pool
        self.service = service

    @classmethod
    async def open(cls, settings: RegistrySettings) -> RegistryResources:
        pool = await asyncpg.create_pool(plain_url(settings.url_of("registry")),
                                         min_size=2, max_size=10)
        try:
            service = RegistryService(RegistryStore(pool))
            if settings.registry_seed:
                problems = await service.seed(selected(catalog(settings.schemas_dir), settings.registry_seed_versions))
                log.info("schemas/ loaded%s", f" with {len(problems)} refused" if problems else "")
        except BaseException:
            await pool.close()
            raise
        return cls(pool, service)

    async def _database(self) -> None:
        await self.pool.fetchval("SELECT 1", timeout=2)

    def probes(self) -> dict[str, Probe]:
        return {"database": self._database}

    async def close(self) -> None:
        await self.pool.close()
