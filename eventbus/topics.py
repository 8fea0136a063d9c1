"""Topics with declared partition counts, created before anything produces to them.

Brokers that auto-create topics on first use pick their own partition count (Tansu: 4), which
would silently change key -> partition placement; so every process that produces declares first.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    #: `retention.ms` at creation (None: the broker's default). Consumers' dedupe retention must outlast
    #: an event's life on its topic plus in the DLQ, or a late replay would be applied again.
    retention_ms: int | None = None

    def configs(self) -> dict[str, str]:
        return {} if self.retention_ms is None else {"retention.ms": str(self.retention_ms)}


class TopicMismatch(RuntimeError):
    pass


async def ensure_topics(bootstrap_servers: str, specs: Iterable[TopicSpec], *, timeout: float = 10.0) -> list[str]:
    """Create the missing topics; return their names. Existing ones must have the declared partitions."""
    wanted = {s.name: s for s in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for name, s in wanted.items() if name not in existing]
        if missing:
            # another process may win the race: fine, the partition check below still applies
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs()) for s in missing])
        present = [n for n in wanted if n in existing]
        if present:
            for described in await admin.describe_topics(present):
                actual = len(described["partitions"])
                declared = wanted[described["topic"]].partitions
                if actual != declared:
                    raise TopicMismatch(
                        f"topic {described['topic']} has {actual} partitions but {declared} are declared; "
                        "keys would land on other partitions. Recreate the topic or change the declaration.")
        return [s.name for s in missing]
    finally:
        await admin.close()


async def partitions_of(consumer: AIOKafkaConsumer, topic: str, *, attempts: int = 100) -> set[int]:
    """The partition numbers of `topic`, refreshing the consumer's metadata until they are known."""
    for _ in range(attempts):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()
    raise LookupError(f"topic {topic} has no partitions: it does not exist (declare it first)")
