"""Prometheus metrics of one relay process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from eventbus.resilience import BreakerState


class RelayMetrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"service": service}
        self.backlog = Gauge("outbox_backlog", "Unpublished outbox rows",
                             ["service"], registry=self.registry).labels(**labels)
        self.oldest_age = Gauge("outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished row",
                                ["service"], registry=self.registry).labels(**labels)
        self.published = Counter("outbox_published", "Rows confirmed by the broker",
                                 ["service"], registry=self.registry).labels(**labels)
        self.failures = Counter("outbox_publish_failures", "Publish rounds that failed",
                                ["service"], registry=self.registry).labels(**labels)
        self.deleted = Counter("outbox_retention_deleted", "Published rows deleted after the retention window",
                               ["service"], registry=self.registry).labels(**labels)
        self.vacuums = Counter("outbox_vacuums", "VACUUMs of the outbox after retention deletes",
                               ["service"], registry=self.registry).labels(**labels)
        self.batch_size = Histogram("outbox_batch_size", "Records per confirmed record batch", ["service"],
                                    buckets=(1, 5, 10, 50, 100, 500, 1000, 2500, 5000),
                                    registry=self.registry).labels(**labels)
        self.breaker = Gauge("outbox_breaker_state", "Circuit breaker: 0 closed, 1 open, 2 half-open",
                             ["service"], registry=self.registry).labels(**labels)
        self.breaker_opened = Counter("outbox_breaker_opened", "Times the breaker opened",
                                      ["service"], registry=self.registry).labels(**labels)
        self.leases = Gauge("outbox_leases_owned", "Lease partitions this relay owns",
                            ["service"], registry=self.registry).labels(**labels)
        self.db_errors = Counter("outbox_database_errors", "Database calls that failed",
                                 ["service"], registry=self.registry).labels(**labels)
        self.errors = Counter("outbox_relay_errors", "Relay rounds that failed with an unexpected error",
                              ["service"], registry=self.registry).labels(**labels)
        self.broker_losses = Counter("outbox_broker_losses", "Times this relay found that the broker had lost records "
                                     "it confirmed, and declared it (once per loss, whichever relay saw it first)",
                                     ["service"], registry=self.registry).labels(**labels)
        self.republished = Counter("outbox_republished", "Published rows this relay made unpublished again after a "
                                   "broker loss (its lease partitions' share of the retained window)",
                                   ["service"], registry=self.registry).labels(**labels)
        self.broker_checks = Counter("outbox_broker_checks", "Times the relay asked the broker whether it still "
                                     "holds what it confirmed", ["service"], registry=self.registry).labels(**labels)

    def set_breaker(self, state: BreakerState) -> None:
        self.breaker.set(int(state))
        if state is BreakerState.OPEN:
            self.breaker_opened.inc()
