"""Readiness probes: `GET /health` is 200 only when the process's database and broker answer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaClient

Probe = Callable[[], Awaitable[None]]


class KafkaProbe:
    """One long-lived metadata client; a failed probe drops it so the next one reconnects."""

    def __init__(self, bootstrap_servers: str, timeout: float = 2.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.timeout = timeout
        self._client: AIOKafkaClient | None = None

    async def __call__(self) -> None:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(bootstrap_servers=self.bootstrap_servers,
                                              request_timeout_ms=int(self.timeout * 1000))
                await asyncio.wait_for(self._client.bootstrap(), self.timeout)
            await asyncio.wait_for(self._client.fetch_all_metadata(), self.timeout)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


async def run_probes(probes: Mapping[str, Probe], timeout: float = 3.0) -> tuple[bool, dict[str, Any]]:
    """Run every probe concurrently; (all ok, {name: "ok" | "error: ..."})."""

    async def one(probe: Probe) -> str:
        try:
            await asyncio.wait_for(probe(), timeout)
            return "ok"
        except Exception as exc:
            return f"error: {type(exc).__name__}: {exc}"[:300]

    names = list(probes)
    results = await asyncio.gather(*(one(probes[n]) for n in names))
    checks = dict(zip(names, results, strict=True))
    return all(r == "ok" for r in results), checks
