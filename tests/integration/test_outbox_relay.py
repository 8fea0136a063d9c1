"""The outbox relay against real PostgreSQL and Tansu: complete, in per-key order, marked published."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

import orjson
import pytest

from eventbus.db import create_engine
from eventbus.schemas.client import SchemaClient
from eventbus.topics import TopicSpec
from tests.integration.conftest import make_topics, read_topic
from tests.integration.outbox_helpers import FAST, running_relay, seq_of, unpublished, write, writer
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_relay_publishes_every_event_in_per_key_order_and_marks_them(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = make_database("management")
    topic = TopicSpec(unique("relay"), 3)
    await make_topics(bootstrap, topic)
    engine = create_engine(url)
    w = writer(topic.name, schemas)
    keys = [str(uuid.uuid4()) for _ in range(5)]
    written = [await write(engine, w, keys[i % 5], seq=i) for i in range(50)]
    async with running_relay(url, bootstrap, topic):
        records = await read_topic(bootstrap, topic.name, 50)
        await eventually(lambda: _zero(url), what="all rows marked published")
    await engine.dispose()
    assert sorted(r.headers[0][1].decode() for r in records) == sorted(written)
    by_key: dict[bytes, list[int]] = defaultdict(list)
    for r in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[r.key].append(seq_of(orjson.loads(r.value)))
    for seqs in by_key.values():
        assert seqs == sorted(seqs)
    headers = dict(records[0].headers)
    assert headers["event_name"] == b"TaskCompleted" and headers["content-type"] == b"application/json"


async def test_notify_wakes_the_relay_well_before_the_fallback_poll(
        make_database: Callable[[str], str], bootstrap: str, schemas: SchemaClient,
        unique: Callable[[str], str]) -> None:
    url = make_database("management")
    topic = TopicSpec(unique("notify"), 1)
    await make_topics(bootstrap, topic)
    engine = create_engine(url)
    slow_poll = replace(FAST, poll_interval=60.0)
    async with running_relay(url, bootstrap, topic, config=slow_poll) as relay:
        await eventually(lambda: _owns_leases(relay), what="relay owns its leases")
        before = relay.notifications
        await write(engine, writer(topic.name, schemas), str(uuid.uuid4()))
        # the fallback poll is 60 s away: only the NOTIFY can deliver it within this deadline
        await read_topic(bootstrap, topic.name, 1, timeout=15)
        assert relay.notifications > before
    await engine.dispose()


async def _zero(url: str) -> bool:
    return await unpublished(url) == 0


async def _owns_leases(relay: object) -> bool:
    return bool(relay.leases.owned)  # type: ignore[attr-defined]
