"""Bonus traffic for `tests.bench.consumer`: tasks and their ratings to seed, result events to produce.

Every event is what hiring's relay would publish: a v0 TaskCompleted/TaskFailed envelope valid per
`schemas/`, keyed by task id, with the envelope facts as headers, for a task the bonus database knows. A
completed task's rating is already in `task_ratings` (its TaskRating arrived first), so it is credited at once.

The bonus database is at its "before" revision with results applied from events (`bonus.task_results_consumer`
= apply, COMM-040 after) and ratings from TaskRating events (`bonus.rating_source` = events, COMM-060 before):
the stage in which the bonus worker applies every result event itself, without calling hiring.
Redeliveries (the duplicate-heavy variant) are byte-identical copies placed a little after their
original, as after a consumer crash between the DB commit and the offset commit.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from eventbus.envelope import Headers, encode, kafka_headers, new_envelope
from eventbus.flags import store as flag_store
from services.bonus.domain import OUTCOME_OF_EVENT, CreditRule
from services.flags import BONUS as FLAGS
from services.stages import BEFORE_REVISION

#: the bonus database's revision for the bench, and the switches that make its worker apply every result event
REVISION = BEFORE_REVISION
SWITCHES = {"bonus.task_results_consumer": "apply", "bonus.rating_source": "events"}

Record = tuple[bytes, bytes, Headers]  # key, value, headers


@dataclass(frozen=True)
class Traffic:
    managers: list[uuid.UUID]
    tasks: list[tuple[uuid.UUID, uuid.UUID, str]]  # task id, creator id, event name
    records: list[Record]  # one event per task, in produce order
    ratings: dict[uuid.UUID, int]  # the completed tasks' ratings

    def expected_credits(self, rule: CreditRule, first: int | None = None) -> int:
        return sum(rule.amount(OUTCOME_OF_EVENT[name], self.ratings.get(task))
                   for task, _, name in self.tasks[:first])


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def make_traffic(n_events: int, n_managers: int, failed_share: float, rng: random.Random) -> Traffic:
    managers = [_uuid(rng) for _ in range(n_managers)]
    tasks: list[tuple[uuid.UUID, uuid.UUID, str]] = []
    records: list[Record] = []
    ratings: dict[uuid.UUID, int] = {}
    for _ in range(n_events):
        task, creator = _uuid(rng), rng.choice(managers)
        name = "TaskFailed" if rng.random() < failed_share else "TaskCompleted"
        payload = {"task_id": str(task), "creator_id": str(creator), "candidate_id": str(_uuid(rng))}
        envelope = new_envelope(name, 0, payload, producer="hiring", aggregate_id=str(task), event_id=_uuid(rng))
        tasks.append((task, creator, name))
        records.append((str(task).encode(), encode(envelope), kafka_headers(envelope["meta"])))
        if name == "TaskCompleted":
            ratings[task] = rng.randint(1, 5)
    return Traffic(managers, tasks, records, ratings)


def with_redeliveries(records: list[Record], share: float, rng: random.Random, window: int = 1000) -> list[Record]:
    """The records plus `share` of them again, each copy up to `window` records after its original."""
    placed = [(float(i), r) for i, r in enumerate(records)]
    for i in rng.sample(range(len(records)), round(len(records) * share)):
        placed.append((i + rng.uniform(0.5, window), records[i]))
    placed.sort(key=lambda p: p[0])
    return [r for _, r in placed]


async def seed_database(url: str, traffic: Traffic) -> None:
    """What the bonus database already knows before the results arrive: the tasks, the completed ones'
    ratings, and the switches under which its worker applies result events."""
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "tasks", columns=["id", "creator_id", "title"],
            records=[(t, c, f"Bench task {i}") for i, (t, c, _) in enumerate(traffic.tasks)])
        await conn.copy_records_to_table(
            "task_ratings", columns=["task_id", "rating", "event_id"],
            records=[(t, r, uuid.uuid5(t, "rating")) for t, r in traffic.ratings.items()])
        specs = {s.name: s for s in FLAGS}
        await flag_store.ensure_defaults(conn, FLAGS)
        for name, value in SWITCHES.items():
            await flag_store.set_flag(conn, specs[name], value, by="bench-consumer",
                                      reason="the bonus worker applies result events (the stage benchmarked)")
    finally:
        await conn.close()


async def produce(bootstrap: str, topic: str, records: list[Record],
                  progress: Callable[[int], None] | None = None, chunk: int = 5000) -> float:
    """Send all records (acks=all, batched); returns the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024, request_timeout_ms=30_000)
    await producer.start()
    started = time.perf_counter()
    try:
        for start in range(0, len(records), chunk):
            sent = [await producer.send(topic, value=v, key=k, headers=h) for k, v, h in records[start:start + chunk]]
            await asyncio.gather(*sent)
            if progress is not None:
                progress(min(start + chunk, len(records)))
    finally:
        await producer.stop()
    return time.perf_counter() - started
