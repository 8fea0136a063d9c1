"""Apply a batch of broker records exactly once in effect; never raise (only cancellation escapes).

For each batch: decode and validate every record (poison -> DLQ at once); then, in ONE database
transaction, claim the event ids in `processed_events` and apply the fresh ones through their
handlers, in order. Retriable failures (a dependency is down) retry the whole batch in place with
backoff: the partition blocks, nothing is dead-lettered. Any other failure re-runs the batch one
event per transaction to isolate the culprit: a non-retriable one is dead-lettered at once, an
unknown one after a small retry budget. The caller acks the records only after `process` returns,
so offsets move only after the transaction committed and every DLQ write was confirmed.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import asyncpg

from eventbus.consumer import dedupe
from eventbus.consumer.dlq import DeadLetterWriter
from eventbus.consumer.errors import (
    DEFAULT_BUG_CLASSES,
    Category,
    Classification,
    SchemaInvalid,
    UnsupportedEvent,
    classify,
)
from eventbus.consumer.messages import Decoded, RawMessage
from eventbus.consumer.metrics import ConsumerMetrics
from eventbus.envelope import Envelope, decode, identity
from eventbus.resilience import Backoff, CircuitBreaker
from eventbus.schemas.client import SchemaClient

log = logging.getLogger(__name__)

#: Returns how many of the events changed nothing because a business key said the fact was
#: already recorded (e.g. one credit per task and outcome); None when that cannot happen.
ApplyFn = Callable[[asyncpg.Connection, list[Decoded]], Awaitable[int | None]]


class _SlowPath(Exception):
    """Internal: this record needs the slow decode path (a schema to load, or a failure to explain)."""


def canonical_event_id(envelope: Envelope) -> str:
    """`meta.event_id` in PostgreSQL's text form (lower-case, hyphenated): what `dedupe.claim` answers with.

    The envelope schemas pin `format: uuid`, which only passes the hyphenated form, so lower-casing is
    enough; anything else is parsed (a ValueError there makes the record poison).
    """
    event_id = envelope["meta"]["event_id"]
    if type(event_id) is str and len(event_id) == 36 and event_id[8] == "-":
        return event_id.lower()
    return str(uuid.UUID(event_id))


@dataclass(frozen=True)
class Handler:
    """Applies a run of events, in order, inside the batch transaction.

    A run is the longest stretch of consecutive fresh events whose handlers share one `apply`
    function: handlers that pass the same function for several names (TaskCompleted and TaskFailed)
    get them mixed in one run, so that a topic carrying both takes one statement per batch, not one
    per change of name.
    """

    event_name: str
    #: the versions accepted; a callable is asked per batch (a switch can change them while the worker runs)
    versions: frozenset[int] | Callable[[], frozenset[int]]
    apply: ApplyFn

    def accepts(self) -> frozenset[int]:
        return self.versions() if callable(self.versions) else self.versions


@dataclass(frozen=True)
class ProcessorConfig:
    unknown_error_budget: int = 3
    backoff_base: float = 0.1
    backoff_cap: float = 5.0
    breaker_threshold: int = 3
    breaker_reset: float = 5.0
    bug_classes: tuple[str, ...] = DEFAULT_BUG_CLASSES
    pool_size: int = 4


class BatchProcessor:
    def __init__(
        self,
        *,
        group: str,
        dsn: str,
        schemas: SchemaClient,
        handlers: Iterable[Handler],
        dlq: DeadLetterWriter,
        metrics: ConsumerMetrics | None = None,
        config: ProcessorConfig = ProcessorConfig(),
    ) -> None:
        self.group = group
        self.dsn = dsn
        self.schemas = schemas
        self.handlers = {h.event_name: h for h in handlers}
        self.dlq = dlq
        self.metrics = metrics or ConsumerMetrics(group)
        self.config = config
        self.backoff = Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self.breaker = CircuitBreaker(f"{group}-dependencies", failure_threshold=config.breaker_threshold,
                                      reset_timeout=config.breaker_reset)
        self._pool: asyncpg.Pool | None = None
        self.last_failure: Classification | None = None
        if dlq.database is None:  # the dead letters' copies go to the group's database
            dlq.database = self.pool

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self.config.pool_size,
                                                   timeout=5, command_timeout=30)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.dlq.close()

    def accepted(self) -> dict[str, list[int]]:
        """What this worker accepts now, event -> versions (its heartbeat reports it for the gates)."""
        return {name: sorted(handler.accepts()) for name, handler in self.handlers.items()}

    # -- the whole batch ----------------------------------------------------------------------
    async def process(self, messages: list[RawMessage]) -> None:
        self.metrics.received.inc(len(messages))
        started = time.perf_counter()
        decoded = await self.decode_batch(messages)
        if decoded:
            await self._apply(decoded)
        self.metrics.blocked.set(0)
        self.metrics.batch_size.observe(len(messages))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    # -- decoding -----------------------------------------------------------------------------
    def accepting(self) -> dict[str, frozenset[int]]:
        """Each handled event's accepted versions, asked once (per batch: the switches are not asked per record)."""
        return {name: handler.accepts() for name, handler in self.handlers.items()}

    async def decode_batch(self, messages: list[RawMessage]) -> list[Decoded]:
        """The batch's events, in order; a poison record is dead-lettered at once and left out.

        The hot path is synchronous and allocates one `Decoded` per record: one JSON parse, one call of the
        compiled validator, the accepted versions asked once per batch. Only a schema not cached yet (its
        first record) or a failure takes the slow path, which awaits the registry or the dead-letter topic.
        """
        accepting = self.accepting()
        schemas = self.schemas.cached
        out: list[Decoded] = []
        append = out.append
        for message in messages:
            try:
                envelope = decode(message.value)
                name, version = identity(envelope)
                compiled = schemas(name, version)
                if compiled is None or not compiled.is_valid(envelope):
                    raise _SlowPath
                accepts = accepting.get(name)
                if accepts is None or version not in accepts:
                    raise _SlowPath
                append(Decoded(message, envelope, name, version, canonical_event_id(envelope)))
            except asyncio.CancelledError:
                raise
            except Exception:  # the slow path says what is wrong, or loads the schema
                found = await self._decode_or_dead_letter(message, accepting)
                if found is not None:
                    append(found)
        return out

    async def decode(self, message: RawMessage, accepting: dict[str, frozenset[int]]) -> Decoded:
        """One record, every check awaited and explained (`accepting`: the batch's accepted versions)."""
        envelope = decode(message.value)
        name, version = identity(envelope)
        compiled = await self.schemas.get(name, version)
        if not compiled.is_valid(envelope):
            issues = compiled.issues(envelope)
            raise SchemaInvalid("; ".join(f"{i.pointer or '/'}: {i.message}" for i in issues))
        accepts = accepting.get(name)
        if accepts is None:
            raise UnsupportedEvent(f"consumer group {self.group} does not consume {name}")
        if version not in accepts:
            if not accepts:
                raise UnsupportedEvent(f"consumer group {self.group} does not consume {name} now (switched off)")
            accepted = ", ".join(f"v{v}" for v in sorted(accepts))
            raise UnsupportedEvent(f"consumer group {self.group} accepts {name} {accepted}, not v{version}")
        return Decoded(message, envelope, name, version, canonical_event_id(envelope))

    async def _decode_or_dead_letter(self, message: RawMessage, accepting: dict[str, frozenset[int]]
                                     ) -> Decoded | None:
        while True:
            try:
                return await self.decode(message, accepting)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc, self.config.bug_classes)
                if failure.retriable:
                    await self._wait(failure)
                    continue
                await self._dead_letter(message, failure, attempts=1)
                return None

    # -- applying -----------------------------------------------------------------------------
    async def _apply(self, items: list[Decoded]) -> None:
        while True:
            try:
                await self._transaction(items)
                self._recovered()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc, self.config.bug_classes)
                if not failure.retriable:
                    break
                await self._wait(failure)
        if len(items) > 1:
            log.info("batch of %d failed (%s); isolating it one event at a time", len(items), failure.error_class)
        for item in items:
            await self._apply_alone(item)

    async def _apply_alone(self, item: Decoded) -> None:
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._transaction([item])
                self._recovered()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = classify(exc, self.config.bug_classes)
                if failure.retriable:
                    attempts -= 1  # a dependency outage is not the event's fault
                    await self._wait(failure)
                    continue
                if failure.category is Category.UNKNOWN and attempts < self.config.unknown_error_budget:
                    self.metrics.retry(failure.category.value)
                    log.warning("event %s failed with %s (attempt %d/%d)", item.event_id, failure.error_class,
                                attempts, self.config.unknown_error_budget)
                    await asyncio.sleep(self.backoff.next_delay())
                    continue
                await self._dead_letter(item.raw, failure, attempts)
                return

    async def _transaction(self, items: list[Decoded]) -> None:
        pool = await self.pool()
        async with pool.acquire() as conn, conn.transaction():
            fresh = await dedupe.claim(conn, self.group, [i.event_id for i in items])
            todo: list[Decoded] = []
            for item in items:
                if item.event_id in fresh:
                    fresh.discard(item.event_id)  # a second copy in the same batch is a duplicate too
                    todo.append(item)
            repeated_facts = 0
            for apply, run in itertools.groupby(todo, key=lambda d: self.handlers[d.event_name].apply):
                repeated_facts += await apply(conn, list(run)) or 0
        self.metrics.duplicates.inc(len(items) - len(todo))
        self.metrics.repeated_facts.inc(repeated_facts)
        for name, count in collections.Counter(d.event_name for d in todo).items():
            self.metrics.applied_event(name, count)

    # -- failure paths ------------------------------------------------------------------------
    async def _wait(self, failure: Classification) -> None:
        self.last_failure = failure
        self.metrics.blocked.set(1)
        self.metrics.retry(failure.category.value)
        self.breaker.record_failure()
        delay = max(self.backoff.next_delay(), self.breaker.retry_in())
        log.warning("dependency unavailable (%s: %s); breaker %s; blocking, retry in %.2fs",
                    failure.error_class, failure.message[:200], self.breaker.state.label, delay)
        await asyncio.sleep(delay)

    def _recovered(self) -> None:
        self.breaker.record_success()
        self.backoff.reset()
        self.metrics.blocked.set(0)

    async def _dead_letter(self, message: RawMessage, failure: Classification, attempts: int) -> None:
        log.warning("dead-lettering %s[%d]@%d: %s %s: %s", message.topic, message.partition, message.offset,
                    failure.category.value, failure.error_class, failure.message[:300])
        await self.dlq.write(message, failure, attempts)
        self.metrics.dlq(failure.category.value)
