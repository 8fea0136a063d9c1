"""Prometheus metrics of one consumer group's worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ConsumerMetrics:
    def __init__(self, group: str) -> None:
        self.registry = r = CollectorRegistry()
        g = {"group": group}
        self.received = Counter("consumer_received", "Messages received", ["group"], registry=r).labels(**g)
        self.applied = Counter("consumer_applied", "Events applied (first time seen)", ["group", "event"],
                               registry=r)
        self.duplicates = Counter("consumer_duplicates", "Events skipped: event_id already processed",
                                  ["group"], registry=r).labels(**g)
        self.repeated_facts = Counter("consumer_repeated_facts",
                                      "Distinct events whose fact was already recorded (business unique key)",
                                      ["group"], registry=r).labels(**g)
        self.dead_lettered = Counter("consumer_dead_lettered", "Messages sent to a DLQ", ["group", "category"],
                                     registry=r)
        self.retries = Counter("consumer_retries", "Retries in place", ["group", "category"], registry=r)
        self.blocked = Gauge("consumer_blocked", "1 while waiting for a dependency", ["group"],
                             registry=r).labels(**g)
        self.batch_size = Histogram("consumer_batch_size", "Messages per applied batch", ["group"],
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000), registry=r).labels(**g)
        self.batch_seconds = Histogram("consumer_batch_seconds", "Time to apply a batch", ["group"],
                                       registry=r).labels(**g)
        self.group = group

    def dlq(self, category: str) -> None:
        self.dead_lettered.labels(group=self.group, category=category).inc()

    def retry(self, category: str) -> None:
        self.retries.labels(group=self.group, category=category).inc()

    def applied_event(self, event: str, n: int = 1) -> None:
        self.applied.labels(group=self.group, event=event).inc(n)
