"""Synchronous links to other services: every call has a timeout and goes through one circuit breaker per
dependency per process (closed / open / half-open with a single trial call). A caller that gets
`LinkUnavailable` answers with a typed fallback (read paths), 503 with nothing written (write paths), or
blocks with backoff (consumers: it is a retriable error)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge

from eventbus.errors import DependencyUnavailable
from eventbus.resilience import BreakerState, CircuitBreaker

log = logging.getLogger(__name__)


class LinkUnavailable(DependencyUnavailable):
    """The dependency did not answer usefully (down, timed out, 5xx, or the breaker is open)."""


class LinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge("breaker_state", "Circuit breaker state (0 closed, 1 open, 2 half-open)",
                           ["dependency"], registry=registry)
        self.calls = Counter("link_calls", "Calls to a dependency by outcome", ["dependency", "outcome"],
                             registry=registry)
        self.fallbacks = Counter("link_fallbacks", "Answers served from a fallback", ["dependency"],
                                 registry=registry)


class Link:
    def __init__(self, dependency: str, base_url: str, *, timeout: float = 1.0, failure_threshold: int = 3,
                 reset_timeout: float = 5.0, metrics: LinkMetrics | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.dependency = dependency
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.metrics = metrics or LinkMetrics(CollectorRegistry())
        self.breaker = CircuitBreaker(dependency, failure_threshold=failure_threshold, reset_timeout=reset_timeout,
                                      on_change=self._changed)
        self.metrics.state.labels(dependency).set(0)
        self.counts = {"ok": 0, "failed": 0, "rejected": 0, "fallback": 0}
        self._http: httpx.AsyncClient | None = None
        self._transport = transport

    async def request(self, method: str, path: str, *, json: Any = None) -> httpx.Response:
        """The answer (any status below 500), or LinkUnavailable; the breaker counts every outcome."""
        if not self.breaker.allow():
            self._count("rejected")
            retry = self.breaker.retry_in()
            raise LinkUnavailable(self.dependency, f"circuit open, next trial in {retry:.1f}s", max(1.0, retry))
        recorded = False
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=self.timeout, transport=self._transport)
            # the whole call, whatever stage it hangs in, is bounded by the link's timeout
            response = await asyncio.wait_for(self._http.request(method, self.base_url + path, json=json),
                                              self.timeout)
            if response.status_code >= 500 or response.status_code == 429:
                self.breaker.record_failure()
                recorded = True
                self._count("failed")
                raise LinkUnavailable(self.dependency, f"{method} {path} answered HTTP {response.status_code}")
            self.breaker.record_success()
            recorded = True
            self._count("ok")
            return response
        except (httpx.HTTPError, TimeoutError) as exc:
            self.breaker.record_failure()
            recorded = True
            self._count("failed")
            raise LinkUnavailable(self.dependency, f"{method} {path}: {type(exc).__name__}") from exc
        finally:
            if not recorded:  # cancelled mid-call: a half-open trial must not stay in flight for ever
                self.breaker.release_trial()

    def fell_back(self) -> None:
        self._count("fallback")
        self.metrics.fallbacks.labels(self.dependency).inc()

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        if outcome != "fallback":
            self.metrics.calls.labels(self.dependency, outcome).inc()

    def _changed(self, state: BreakerState) -> None:
        self.metrics.state.labels(self.dependency).set(int(state))
        log.warning("breaker %s -> %s", self.dependency, state.label)

    def status(self) -> dict[str, Any]:
        return {"breaker": self.breaker.state.label, "opened_total": self.breaker.opened_total, **self.counts}

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
