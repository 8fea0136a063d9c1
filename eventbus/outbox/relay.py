"""The outbox relay: drains one service's outbox to Kafka, in order, through lease partitions.

Wake-up is LISTEN/NOTIFY (a trigger notifies on insert) with a fallback poll. Rows are marked
published only after the broker confirmed them, so a relay killed mid-batch leaves them for the
next owner to republish (duplicates possible, loss impossible). The mark of one round runs while the
next round is fetched and sent (that fetch leaves the ids being marked out). Broker failures go through
exponential backoff with full jitter and a circuit breaker; database failures make the relay wait and
resume, keeping broker-confirmed ids in memory until they can be marked. Retention (deleting old
published rows, then VACUUM) runs beside the publishing loop. A broker that lost records it had confirmed is
noticed and the retained window of what it lost is published again (`eventbus.outbox.loss`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Collection
from typing import Any

import asyncpg

from eventbus.failures import DB_UNAVAILABLE
from eventbus.outbox import store
from eventbus.outbox.config import RelayConfig
from eventbus.outbox.leases import LeaseManager
from eventbus.outbox.loss import BrokerLog, Confirmed, Finding
from eventbus.outbox.metrics import RelayMetrics
from eventbus.outbox.publisher import KafkaPublisher, Probe
from eventbus.outbox.retention import Retention
from eventbus.outbox.wakeup import Wakeup
from eventbus.resilience import Backoff, BreakerState, CircuitBreaker
from eventbus.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)
__all__ = ["Relay", "RelayConfig", "new_instance_id"]


def new_instance_id(service: str) -> str:
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Relay:
    def __init__(
        self,
        *,
        service: str,
        dsn: str,
        bootstrap_servers: str,
        topics: list[TopicSpec],
        config: RelayConfig | None = None,
        instance_id: str | None = None,
        paused_topics: Callable[[], Collection[str]] | None = None,
        retired_topics: Callable[[], Collection[str]] | None = None,
    ) -> None:
        config = config or RelayConfig()
        self.service = service
        self.dsn = dsn
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.config = config
        self.instance_id = instance_id or new_instance_id(service)
        self.paused_topics = paused_topics or (lambda: ())
        #: topics deleted for good (a playbook removed them): never declared again
        self.retired_topics = retired_topics or (lambda: ())
        #: the pause of the last fetch: once a topic is here, nothing of it is being published
        self.paused_in_effect: list[str] = []
        self.metrics = RelayMetrics(service)
        self.leases = LeaseManager(self.instance_id, ttl=config.lease_ttl)
        self.breaker = CircuitBreaker(f"{service}-kafka", failure_threshold=config.breaker_threshold,
                                      reset_timeout=config.breaker_reset, on_change=self._breaker_changed)
        self.backoff = Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self.db_backoff = Backoff(base=config.backoff_base, cap=config.backoff_cap)
        self.publisher = KafkaPublisher(bootstrap_servers, idempotence=config.idempotence,
                                        request_timeout=config.publish_timeout, client_id=f"relay-{service}")
        self.pool: asyncpg.Pool | None = None
        self.published_total = 0
        self.failures_total = 0
        self._successes = 0
        self.last_error: str | None = None
        self.database_ok = False
        self._schema_ok = False  # the outbox database has the tables this code publishes with
        #: why this relay publishes nothing until its database is migrated (its /health fails meanwhile)
        self.outdated: str | None = None
        self._pending = Confirmed()  # broker-confirmed, not yet marked published
        # The mark of the last round runs while the next round is fetched and sent (its ids are left out of
        # that fetch); at most one mark is in flight, and it is awaited before any wait or heartbeat.
        self._marking: asyncio.Task[None] | None = None
        self._marking_batch = Confirmed()
        self.broker = BrokerLog(self.instance_id, self.metrics, interval=config.loss_check_interval,
                                grace=config.loss_grace)
        self._stop = asyncio.Event()
        self._next_heartbeat = 0.0
        self.wakeup = Wakeup(dsn, Backoff(base=config.backoff_base, cap=config.backoff_cap))
        self.retention = Retention(config, self.metrics)

    @property
    def notifications(self) -> int:
        return self.wakeup.notifications

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        stopped = self._stop.is_set
        listener = asyncio.create_task(self.wakeup.listen(stopped, self._sleep), name="outbox-listen")
        housekeeping = asyncio.create_task(self.retention.run(lambda: self.pool, stopped, self._sleep),
                                           name="outbox-retention")
        try:
            while not self._stop.is_set():
                try:
                    await self._tick()
                except DB_UNAVAILABLE as exc:
                    await self._database_down(exc)
                except store.OutboxOutdated as exc:
                    await self._outdated(exc)
                except Exception as exc:
                    # Nothing is marked before the broker confirmed it, so going on is safe; dying would
                    # stop the outbox until someone restarts the process.
                    await self._unexpected(exc)
        finally:
            listener.cancel()
            housekeeping.cancel()
            await asyncio.gather(listener, housekeeping, return_exceptions=True)
            await self._shutdown()

    async def _shutdown(self) -> None:
        if (self._pending or self._marking is not None) and self.pool is not None:
            try:
                await self._mark()
            except DB_UNAVAILABLE as exc:
                log.warning("could not mark %d confirmed rows on shutdown (%r); they will be republished",
                            len(self._pending.ids), exc)
        await self.publisher.stop()
        if self.pool is not None:
            try:
                async with self.pool.acquire(timeout=2) as conn:
                    await self.leases.release_all(conn)
            except DB_UNAVAILABLE:
                pass
            await self.pool.close()

    # -- one iteration ---------------------------------------------------------------------------
    async def _tick(self) -> None:
        if self.pool is None:
            # the round, the mark in flight and the retention cleanup each hold one connection at most
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=4, timeout=5,
                                                  command_timeout=30)
        if not self._schema_ok:
            await store.check_schema(self.pool)
            self._schema_ok, self.outdated = True, None
        if not self.broker.loaded:
            await self.broker.load(self.pool)
        if self._pending or (self._marking is not None and self._marking.done()):
            await self._mark()
        now = time.monotonic()
        if now >= self._next_heartbeat:
            await self._mark()  # a partition given away must have nothing confirmed and unmarked
            await self._heartbeat()
            self._next_heartbeat = now + self.config.heartbeat_interval
        self.database_ok = True
        self.db_backoff.reset()

        if not self.leases.owned or self.leases.usable_for() < self.config.round_budget:
            await self._mark()
            await self._idle(self.config.heartbeat_interval)
            return
        if not self.breaker.allow():
            await self._mark()
            await self._sleep(max(0.05, min(self.breaker.retry_in(), self.config.heartbeat_interval)))
            return
        failures, successes = self.failures_total, self._successes
        try:
            await self._round()
        finally:
            if self.failures_total == failures and self._successes == successes:
                # the round let the trial through but tried nothing (a loss being recovered, nothing to send, the
                # database went away): a half-open breaker must let the next round try, not wait for ever
                self.breaker.release_trial()

    async def _round(self) -> None:
        assert self.pool is not None
        if self.broker.check_due(self.publisher.started, self.publisher.connections()) \
                and not await self._check_broker():
            return
        if self.broker.recovery_due:
            await self._mark()  # what was confirmed before is marked, then made unpublished again with the rest
            if (wait := self.broker.recover_in()) > 0:  # nothing of the lease partitions goes out meanwhile
                await self._sleep(min(wait, self.config.heartbeat_interval))
                return
            await self.broker.recover(self.pool, self.leases.owned)
        trial = self.breaker.state is BreakerState.HALF_OPEN
        limit = 1 if trial else self.config.batch_size
        self.paused_in_effect = sorted(self.paused_topics())
        rows = await store.fetch_unpublished(self.pool, sorted(self.leases.owned), limit, self._marking_batch.ids,
                                             self.paused_in_effect)
        if not rows:
            await self._mark()
            await self._idle(self.config.poll_interval)
            return
        await self._publish(rows)
        if len(rows) < limit:
            await self._mark()
            await self._idle(self.config.poll_interval)

    async def _publish(self, rows: list[store.OutboxRow]) -> None:
        if not self.publisher.started:
            try:
                await asyncio.wait_for(self._start_publisher(), timeout=4 * self.config.publish_timeout)
            except Exception as exc:
                await self._publish_failed(exc)
                return
        seen_loss = self.broker.latest_loss
        outcome = await self.publisher.publish(rows, self.broker.floor())
        self._pending.add(outcome.confirmed, self.broker.confirmed(outcome), seen_loss)
        self.published_total += len(outcome.confirmed)
        self.metrics.published.inc(len(outcome.confirmed))
        for size in outcome.batches:
            self.metrics.batch_size.observe(size)
        await self._finish_marking()
        self._start_marking()
        if outcome.went_back:
            # what the round sent after the loss is on the new log already; the rest waits for the window
            await self._declare(self.broker.went_back(outcome, await self._partition_counts()))
        if outcome.error is None:
            self.breaker.record_success()
            self._successes += 1
            self.backoff.reset()
        else:
            await self._publish_failed(outcome.error)

    async def _start_publisher(self) -> None:
        retired = set(self.retired_topics())
        await ensure_topics(self.bootstrap_servers, [t for t in self.topics if t.name not in retired],
                            timeout=self.config.publish_timeout)
        await self.publisher.start()

    # -- a broker that lost what it confirmed (eventbus.outbox.loss) -----------------------------------
    async def _check_broker(self) -> bool:
        """Ask the broker whether it still holds what it confirmed; declare a loss if not. False when it could
        not be asked (handled as a failed publish: backoff and breaker)."""
        self.metrics.broker_checks.inc()
        retired = set(self.retired_topics())
        try:
            if not self.publisher.started:
                await asyncio.wait_for(self._start_publisher(), timeout=4 * self.config.publish_timeout)
            probe = await self.publisher.probe(self.broker.highs())
            finding = self.broker.lost_in(probe, retired, await self._partition_counts(probe))
            missing = [t for t in self.topics if t.name not in probe.topics and t.name not in retired]
            if missing:  # declared again before anything is sent: a producer would create them with any count
                await ensure_topics(self.bootstrap_servers, missing, timeout=self.config.publish_timeout)
        except Exception as exc:
            await self._publish_failed(exc)
            return False
        self.broker.checked(self.publisher.connections())
        if finding is not None:
            await self._declare(finding)
        return True

    async def _declare(self, finding: Finding) -> None:
        assert self.pool is not None
        await self.broker.declare(self.pool, finding)
        if await self.broker.unrecovered(self.pool, self.leases.owned):
            self.broker.recovery_due = True

    async def _partition_counts(self, probe: Probe | None = None) -> dict[str, int]:
        """Partition counts as declared, else as the broker or the producer knows them."""
        counts = {t.name: t.partitions for t in self.topics}
        for topic in {t for t, _ in self.broker.partitions()} - set(counts):
            if probe is not None and probe.topics.get(topic):
                counts[topic] = probe.topics[topic]
            elif self.publisher.started:
                with contextlib.suppress(Exception):
                    counts[topic] = await asyncio.wait_for(self.publisher.partition_count(topic), 1.0)
        return counts

    async def _publish_failed(self, exc: BaseException) -> None:
        self.failures_total += 1
        self.metrics.failures.inc()
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        self.breaker.record_failure()
        delay = self.backoff.next_delay()
        log.warning("publish failed (%s); breaker %s, retry in %.2fs", self.last_error,
                    self.breaker.state.label, delay)
        await self.publisher.reset()
        await self._sleep(delay)

    def _start_marking(self) -> None:
        assert self.pool is not None and self._marking is None
        if self._pending:
            self._marking_batch, self._pending = self._pending, Confirmed()
            self._marking = asyncio.create_task(self._mark_batch(self.pool, self._marking_batch), name="outbox-mark")

    async def _mark_batch(self, pool: asyncpg.Pool, batch: Confirmed) -> None:
        seen = self.broker.latest_loss if batch.seen_loss is None else batch.seen_loss
        if not await store.mark_confirmed(pool, batch.ids, seen, batch.offsets):
            log.info("%d confirmed rows left unpublished: a broker loss was declared after they were sent, they go "
                     "out again with the retained window", len(batch.ids))

    async def _finish_marking(self) -> None:
        """Wait for the mark in flight; if it failed, its ids go back to `_pending` and its error is raised."""
        task, self._marking = self._marking, None
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except BaseException:
            if not task.done():  # we were cancelled, the mark goes on: settle it when it ends
                self._marking = task
                raise
            self._pending.put_back(self._marking_batch)
            self._marking_batch = Confirmed()
            raise
        self._marking_batch = Confirmed()

    async def _mark(self) -> None:
        """Everything confirmed so far is marked published when this returns."""
        await self._finish_marking()
        self._start_marking()
        await self._finish_marking()

    async def _heartbeat(self) -> None:
        assert self.pool is not None
        async with self.pool.acquire() as conn:
            owned = await self.leases.heartbeat(conn, self.status())
        self.metrics.leases.set(len(owned))
        await self.broker.load(self.pool)
        if await self.broker.unrecovered(self.pool, owned):
            self.broker.recovery_due = True
        stats = await store.backlog(self.pool)
        self.metrics.backlog.set(stats.size)
        self.metrics.oldest_age.set(stats.oldest_age)

    async def _database_down(self, exc: BaseException) -> None:
        self.database_ok = False
        self.metrics.db_errors.inc()
        self.last_error = f"database: {type(exc).__name__}: {exc}"[:500]
        if self.leases.usable_for() == 0:
            self.leases.drop_all()
        delay = self.db_backoff.next_delay()
        log.warning("%s; retrying in %.2fs (%d confirmed rows kept to mark)", self.last_error, delay,
                    len(self._pending.ids))
        await self._sleep(delay)

    async def _outdated(self, exc: store.OutboxOutdated) -> None:
        self.last_error = self.outdated = str(exc)
        self.metrics.errors.inc()
        delay = self.db_backoff.next_delay()
        log.error("%s (next check in %.2fs)", exc, delay)
        await self._sleep(delay)

    async def _unexpected(self, exc: BaseException) -> None:
        self.metrics.errors.inc()
        self.last_error = f"unexpected: {type(exc).__name__}: {exc}"[:500]
        delay = self.db_backoff.next_delay()
        log.exception("relay round failed unexpectedly; retrying in %.2fs", delay)
        await self._sleep(delay)

    # -- waiting ---------------------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _idle(self, seconds: float) -> None:
        await self.wakeup.idle(seconds, self._stop)

    # -- observability ---------------------------------------------------------------------------
    def _breaker_changed(self, state: BreakerState) -> None:
        self.metrics.set_breaker(state)
        log.info("breaker %s -> %s", self.breaker.name, state.label)

    def status(self) -> dict[str, Any]:
        return {
            "breaker": self.breaker.state.label,
            "published_total": self.published_total,
            "failures_total": self.failures_total,
            "idempotent_producer": self.publisher.idempotent,
            "paused_topics": self.paused_in_effect,
            "last_error": self.last_error,
            "pid": os.getpid(),
            **self.broker.status(),
        }
