"""Noticing a broker that lost records it had confirmed, and publishing the outbox's retained window again.

A broker can lose acknowledged records: an in-memory broker (the embedded Tansu) comes back empty after a
restart, a deleted and recreated topic starts empty, an unclean leader election on Apache Kafka truncates a
partition. The relays had marked those rows published, so nothing would send them again.

Detection. Each relay knows, per topic-partition, the highest offset at which the broker confirmed a record of
its outbox: what it confirmed itself, and what every relay recorded in `outbox_broker_offsets` with its marks
(read back at each heartbeat, so a relay that restarts knows it too). The partition's log was lost when

- a batch is confirmed at or below that offset (the log went back: the rest of that partition waits), or
- the log ends at or below it (ListOffsets latest, and where that is not past it, since Tansu answers the last
  batch's base offset + 1, a fetch's high watermark), or the topic is missing.

The relay asks the broker (over the producer's own connection) before it sends anything on a connection opened
since its last check (a broker that restarted is always reached over a new connection), and every
`loss_check_interval` s while it knows of confirmed records, busy or idle.

Recovery. The relay that notices first declares the loss (`outbox_broker_losses` and its lost partitions; an
advisory lock makes one declaration of one loss, the other relays adopt it), logs it once, counts it
(`outbox_broker_losses_total`), and declares missing topics again. Then every relay, for the lease partitions it
owns and before it fetches anything: holds them back for `loss_grace` s (a running consumer notices that its log
went back only while the new log is still short of where it was), finishes its marks, and in one statement makes
every retained published row of those lease partitions that went to a lost partition unpublished again, and
records them recovered from that loss (`outbox_leases.recovered_loss`). Its next fetches take those rows with
whatever was never published, in id order, so per key the new log gets the retained window in commit order. A
lease partition that changes hands is recovered by its new owner before it publishes. A mark of rows confirmed
while the relay did not yet know of a later loss is void: they go out again with the window (duplicates, never a
gap). `outbox_republished_total` counts the rows made unpublished again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from eventbus.outbox import store
from eventbus.outbox.metrics import RelayMetrics
from eventbus.outbox.publisher import Probe, PublishOutcome, TopicPartition

log = logging.getLogger(__name__)

#: (loss id, offset): the offset counts in the log that began with that loss (0: the first log)
Epoch = tuple[int, int]


@dataclass
class Confirmed:
    """Rows the broker confirmed and not yet marked, with the offsets it confirmed them at."""

    ids: list[int] = field(default_factory=list)
    offsets: dict[TopicPartition, Epoch] = field(default_factory=dict)
    #: the latest loss the relay knew of when it sent the oldest of them
    seen_loss: int | None = None

    def __bool__(self) -> bool:
        return bool(self.ids) or bool(self.offsets)

    def add(self, ids: list[int], offsets: Mapping[TopicPartition, Epoch], seen_loss: int) -> None:
        self.ids.extend(ids)
        for tp, epoch in offsets.items():
            self.offsets[tp] = max(self.offsets.get(tp, epoch), epoch)
        self.seen_loss = seen_loss if self.seen_loss is None else min(self.seen_loss, seen_loss)

    def put_back(self, older: Confirmed) -> None:
        """`older` could not be marked: it goes first again."""
        self.ids[:0] = older.ids
        for tp, epoch in older.offsets.items():
            self.offsets[tp] = max(self.offsets.get(tp, epoch), epoch)
        if older.seen_loss is not None:
            self.seen_loss = older.seen_loss if self.seen_loss is None else min(self.seen_loss, older.seen_loss)


@dataclass
class Finding:
    """Partitions whose log the broker lost."""

    #: what recovery resets: (topic, partition count, partition); a topic whose partition count is unknown is
    #: (topic, 1, 0): all its rows
    lost: list[store.Lost] = field(default_factory=list)
    #: what the new log of each lost partition is known to hold (the offset of a batch on it, or -1)
    highs: dict[TopicPartition, int] = field(default_factory=dict)
    shown: list[str] = field(default_factory=list)

    def add(self, tp: TopicPartition, count: int | None, high: int, why: str) -> None:
        entry = (tp[0], count, tp[1]) if count else (tp[0], 1, 0)
        if entry not in self.lost:
            self.lost.append(entry)
        self.highs[tp] = high
        if why not in self.shown:
            self.shown.append(why)

    def evidence(self, limit: int = 4) -> str:
        if len(self.shown) <= limit:
            return "; ".join(self.shown)
        return "; ".join(self.shown[:limit]) + f"; and {len(self.shown) - limit} more partitions"


class BrokerLog:
    """What one relay knows of the broker's logs, and of the losses to recover from."""

    def __init__(self, instance_id: str, metrics: RelayMetrics, *, interval: float, grace: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.instance_id = instance_id
        self.metrics = metrics
        self.interval = interval
        self.grace = grace
        #: when the lease partitions may be recovered (the grace after learning of a loss)
        self.recover_at = 0.0
        self._clock = clock
        self.known: dict[TopicPartition, Epoch] = {}
        #: the latest loss this relay knows of (declared by any relay)
        self.latest_loss = 0
        #: whether what every relay recorded has been read once (at the relay's start)
        self.loaded = False
        #: the owned lease partitions may hold rows to publish again: recover before fetching
        self.recovery_due = False
        self.declared = 0
        self.republished = 0
        self.last_loss: str | None = None
        self._verified: list[Any] = []
        self._next_check = 0.0

    # -- what is known ---------------------------------------------------------------------------
    async def load(self, pool: asyncpg.Pool) -> None:
        """Read what every relay recorded (at start and at each heartbeat)."""
        state = await store.broker_state(pool)
        for tp, theirs in state.offsets.items():
            mine = self.known.get(tp)
            if mine is None or theirs[0] > mine[0] or (theirs[0] == mine[0] and theirs[1] > mine[1]):
                self.known[tp] = theirs
        if state.latest_loss > self.latest_loss:
            if self.loaded:
                log.info("broker loss #%d declared by another relay: recovering this relay's lease partitions",
                         state.latest_loss)
                self.recover_at = self._clock() + self.grace
            self.latest_loss = state.latest_loss
            self.recovery_due = True  # the lease partitions say whether there is anything left to do
        self.loaded = True

    def floor(self) -> dict[TopicPartition, int]:
        """Per partition, the offset at or below which a new batch means the log went back."""
        return {tp: offset for tp, (_, offset) in self.known.items()}

    def confirmed(self, outcome: PublishOutcome) -> dict[TopicPartition, Epoch]:
        """Count the offsets of a publish sent with the current knowledge; what the mark should record."""
        counted = {}
        for tp, offset in outcome.offsets.items():
            if tp in outcome.went_back:
                continue
            loss_id, high = self.known.get(tp, (0, -1))
            self.known[tp] = counted[tp] = (loss_id, max(high, offset))
        return counted

    def partitions(self) -> list[TopicPartition]:
        return sorted(tp for tp, (_, offset) in self.known.items() if offset >= 0)

    def highs(self) -> dict[TopicPartition, int]:
        """What to ask the broker about: the partitions it confirmed records on, and the last offset of each."""
        return {tp: self.known[tp][1] for tp in self.partitions()}

    # -- when to ask the broker ------------------------------------------------------------------
    def check_due(self, started: bool, connections: list[Any]) -> bool:
        if not any(offset >= 0 for _, offset in self.known.values()):
            return False  # nothing confirmed yet: nothing the broker could have lost
        if not started or not connections:
            return True
        if any(not conn.connected() or not any(conn is seen for seen in self._verified) for conn in connections):
            return True  # a connection opened since the last check: maybe to a broker that restarted empty
        return self._clock() >= self._next_check

    def checked(self, connections: list[Any]) -> None:
        self._verified = list(connections)
        self._next_check = self._clock() + self.interval

    def check_again(self) -> None:
        self._next_check = 0.0

    def lost_in(self, probe: Probe, retired: Collection[str], counts: Mapping[str, int]) -> Finding | None:
        """The partitions whose log the broker lost, with what showed it; None when it holds all it confirmed."""
        finding = Finding()
        for tp in self.partitions():
            topic, partition = tp
            if topic in retired:  # deleted for good by a playbook: nothing of it is published again
                del self.known[tp]
                continue
            high = self.known[tp][1]
            if topic not in probe.topics:
                finding.add(tp, counts.get(topic), -1, f"{topic} is missing (the broker had confirmed batches on it)")
            elif (end := probe.ends.get(tp, 0)) <= high:
                finding.add(tp, counts.get(topic, probe.topics[topic]), end - 1,
                            f"{topic}[{partition}] ends at {end}, the broker had confirmed a record at {high}")
        return finding if finding.highs else None

    def went_back(self, outcome: PublishOutcome, counts: Mapping[str, int]) -> Finding:
        finding = Finding()
        for (topic, partition), (floor, landed) in sorted(outcome.went_back.items()):
            finding.add((topic, partition), counts.get(topic), landed,
                        f"{topic}[{partition}] took a batch at {landed}, the broker had confirmed a record at {floor}")
        return finding

    # -- declaring and recovering ----------------------------------------------------------------
    async def declare(self, pool: asyncpg.Pool, finding: Finding) -> bool:
        """Declare the loss; False when another relay declared one first (adopted: look again)."""
        evidence = finding.evidence()
        loss_id = await store.declare_loss(pool, self.latest_loss, finding.lost, finding.highs, self.instance_id,
                                           evidence)
        if loss_id is None:
            await self.load(pool)
            self.check_again()
            return False
        for tp, high in finding.highs.items():
            self.known[tp] = (loss_id, high)
        self.latest_loss = loss_id
        self.recovery_due = True
        self.recover_at = self._clock() + self.grace
        self.declared += 1
        self.last_loss = f"#{loss_id}: {evidence}"
        self.metrics.broker_losses.inc()
        log.warning("the broker lost records it had confirmed (loss #%d: %s): publishing the outbox's retained "
                    "window of those partitions again", loss_id, evidence)
        return True

    async def unrecovered(self, pool: asyncpg.Pool, owned: Collection[int]) -> bool:
        if not self.latest_loss or not owned:
            return False
        return await store.unrecovered_leases(pool, self.instance_id, sorted(owned), self.latest_loss) > 0

    def recover_in(self) -> float:
        """Seconds the grace still lasts (nothing of the owned lease partitions is published meanwhile)."""
        return max(0.0, self.recover_at - self._clock())

    async def recover(self, pool: asyncpg.Pool, owned: Collection[int]) -> int:
        """Make the lost rows of the owned lease partitions pending again; how many."""
        if not self.latest_loss or not owned:
            self.recovery_due = False
            return 0
        count, partitions = await store.recover(pool, self.instance_id, sorted(owned), self.latest_loss)
        self.recovery_due = False
        if partitions:
            self.republished += count
            self.metrics.republished.inc(count)
            log.info("broker loss #%d: %d published rows of lease partitions %s will be published again",
                     self.latest_loss, count, _ranges(partitions))
        return count

    def status(self) -> dict[str, Any]:
        return {"broker_losses_declared": self.declared, "republished": self.republished,
                "latest_broker_loss": self.latest_loss, "last_broker_loss": self.last_loss}


def _ranges(partitions: list[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    spans: list[list[int]] = []
    for p in partitions:
        if spans and p == spans[-1][1] + 1:
            spans[-1][1] = p
        else:
            spans.append([p, p])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans) or "none"
