"""A Faust worker for one consumer group: one agent per source topic, each feeding a BatchProcessor.

Records are read raw (decoding and validation happen inside the processor, where a failure can be
classified) and taken in batches with `noack_take`; a batch is acked only after `process` returned,
so an agent cancelled mid-batch (shutdown, SIGKILL) leaves its records to be delivered again.

A partition whose log the broker lost (a topic deleted and recreated, an unclean leader election, an in-memory
broker restarted while the group survived) is read again from its beginning: see `LogResetGuard`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import faust
from aiokafka import TopicPartition
from faust import web
from prometheus_client import Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from eventbus.consumer import dedupe, dlq
from eventbus.consumer.dlq import dlq_topic
from eventbus.consumer.messages import RawMessage
from eventbus.consumer.processor import BatchProcessor, ProcessorConfig
from eventbus.consumer.transport import BackboneApp
from eventbus.health import KafkaProbe, run_probes
from eventbus.resilience import Backoff
from eventbus.resilience.retry import retry
from eventbus.settings import CommonSettings
from eventbus.topics import TopicSpec, ensure_topics

log = logging.getLogger(__name__)


class WorkerSettings(CommonSettings):
    #: /health and /metrics of each consumer group's worker of this system: distinct, so workers started on
    #: their own do not collide; the stack reads the same fields. `port_for` says which setting wins.
    bonus_worker_port: int = 8103
    hiring_worker_port: int = 8104
    #: the port of whichever worker reads it (compose sets it per container; tests set it for a worker of theirs)
    worker_port: int | None = None
    consumer_batch_max: int = 500
    #: how long a partial batch waits for more records: the latency price of batching at low load
    consumer_batch_within: float = 0.02
    #: records queued per agent ahead of processing. Faust stops fetching a partition at 80% full and
    #: resumes at 40%; with its default 4096 the queue ran dry between (measured: half the throughput)
    consumer_stream_buffer: int = 16384
    #: Tansu holds a JoinGroup for about half the session timeout, and a dead member is noticed after
    #: the session timeout: both are failover time. Faust's 60 s default made joins take 30 s.
    consumer_session_timeout: float = 6.0
    consumer_heartbeat_interval: float = 1.0
    consumer_rebalance_timeout: float = 10.0
    consumer_commit_interval: float = 1.0
    #: see eventbus.consumer.transport: the latency floor of each hop on Tansu
    consumer_fetch_max_wait_ms: int = 50
    consumer_unknown_error_budget: int = 3
    consumer_backoff_cap: float = 5.0
    consumer_bug_classes: str = "KeyError,TypeError,AttributeError,ValueError,UnicodeDecodeError"
    #: longer than topic retention (7 d) plus DLQ retention (14 d): a replay is still deduplicated
    consumer_dedupe_retention_days: float = 30.0
    #: how often the worker looks for partitions whose log the broker lost (LogResetGuard): well within the
    #: relays' RELAY_LOSS_GRACE, while the new log is still short of where the worker was
    consumer_log_reset_check: float = 0.2
    consumer_data_dir: Path = Path(".data/faust")

    def port_for(self, group: str) -> int:
        """`<GROUP>_WORKER_PORT` when set, else WORKER_PORT, else the group's default above."""
        own = f"{group}_worker_port"
        if own in self.model_fields_set or (self.worker_port is None and own in type(self).model_fields):
            return int(getattr(self, own))
        if self.worker_port is not None:
            return self.worker_port
        raise ValueError(f"no port for the {group} worker: set WORKER_PORT")

    def processor_config(self) -> ProcessorConfig:
        return ProcessorConfig(
            unknown_error_budget=self.consumer_unknown_error_budget,
            backoff_cap=self.consumer_backoff_cap,
            bug_classes=tuple(c.strip() for c in self.consumer_bug_classes.split(",") if c.strip()),
        )


def to_raw(message: Any) -> RawMessage:
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        key=message.key,
        value=message.value,
        headers=list(message.headers or ()),
    )


def broker_urls(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


async def wait_for_topics(settings: WorkerSettings, group: str, sources: list[TopicSpec]) -> None:
    """Declare the source topics and their DLQ topics, waiting for the broker if it is not up yet."""
    specs = sources + [TopicSpec(dlq_topic(group, s.name), s.partitions) for s in sources]
    await retry(lambda: ensure_topics(settings.kafka_bootstrap_servers, specs), what="declaring the topics",
                backoff=Backoff(base=0.5, cap=5.0), log=log)


#: loop turns a trickle's batch gives the conductor to finish handing over a fetch (it yields every 100 records)
TRICKLE_TURNS = 3


async def take_batches(stream: Any, max_records: int, within: float,
                       queues: list[Any] | None = None, *, busy: bool = True) -> AsyncIterator[list[Any]]:
    """The agent's events in batches of up to `max_records`, taken off its channel's queue in bulk.

    Only a busy stream lingers: after a batch at least half full (or at the start, unless `busy` is False), a
    partial batch waits up to `within` for more, which amortizes the batch's transaction under load. After a
    smaller batch the records trickle in: lingering would only add `within` to every event's latency (make
    bench-e2e: ~20 ms of a 47 ms median at 200 outcomes/s), so the batch takes what the fetch being delivered
    holds (the conductor hands a fetch over in a few loop turns) and goes.

    Faust's `Stream.noack_take` spends several tasks and loop turns per event and stops taking while
    a batch is processed, so a batch held what arrived in `within` after the previous one (measured:
    ~70 records, ~3k/s). Here the conductor keeps filling the queue while a batch is processed, each
    batch takes everything queued, and only a partial batch of a busy stream waits for more. Per event
    it does what iterating the stream does: one fetched before the current rebalance generation, or
    while flow is stopped, is skipped without an ack (the consumer seeks back to the committed offset
    and delivers it again); the others are tracked as unacked, so a rebalance waits for their ack.
    """
    app = stream.app
    consumer = app.consumer
    channel = aiter(stream.channel)  # subscribes to the topic, as iterating the stream does
    queue = channel.queue
    if queues is not None:  # LogResetGuard looks in it
        queues.append(queue)

    def keep(batch: list[Any], event: Any) -> None:
        message = event.message
        if message.generation_id != app.consumer_generation_id or not app.flow_control.is_active():
            return
        if not message.tracked:
            message.tracked = True
            consumer.track_message(message)
        batch.append(event)

    def take_queued(batch: list[Any]) -> None:
        while len(batch) < max_records and not queue.empty():
            keep(batch, queue.get_nowait())

    try:
        while True:
            batch: list[Any] = []
            try:
                keep(batch, await queue.get())
                take_queued(batch)
                if len(batch) < max_records:
                    if within and busy:
                        await asyncio.sleep(within)
                    else:  # a trickle: take what the fetch being delivered holds, do not linger for more
                        for _ in range(TRICKLE_TURNS):
                            await asyncio.sleep(0)
                    take_queued(batch)
            except StopAsyncIteration:  # thrown into the queue when the app stops, as a stream ends
                return
            busy = len(batch) >= max_records // 2
            if batch:
                yield batch
    finally:
        channel.on_stop_iteration()


class LogResetGuard:
    """Reads a partition again from its beginning when the broker lost its log under a running worker.

    A running consumer keeps its position when the log under it is reset: on Tansu it then fetches beyond the
    end and sees nothing new, ever (a recreated topic); on Apache Kafka the fetch is out of range and aiokafka
    moves to the beginning, but Faust drops every record below the offset it read last and ignores acks below
    the offset it committed. So, every `interval` s, for each assigned partition whose high watermark (from the
    last fetch) is below where this worker was (the offset it read last, committed, or will fetch next): once
    every record it delivered from the old log is acked, Faust's offsets for the partition are forgotten (as a
    rebalance does) and the consumer seeks to the beginning. Dedupe skips what was applied before (counted in
    `consumer_duplicates`); `consumer_log_resets` counts the partitions read again.

    A broker that restarts empty also forgets the group: the worker rejoins, finds no committed offset and
    starts from the beginning by itself; this guard is for when the group survives the loss.
    """

    def __init__(self, app: faust.App, counter: Callable[[], Any]) -> None:
        self.app = app
        self._make_counter = counter
        self._counter: Any = None
        #: the agents' channel queues (take_batches registers them): events delivered, not yet taken
        self.queues: list[Any] = []

    async def check(self) -> list[Any]:
        """Partitions read again from the beginning by this check."""
        if self._counter is None:  # made on the first check: shown at 0 until a reset
            self._counter = self._make_counter()
        consumer: Any = self.app.consumer  # Faust's per-partition offsets are private
        thread = getattr(consumer, "_thread", None)
        kafka = getattr(thread, "_consumer", None)
        if thread is None or kafka is None or self.app.rebalancing:
            return []
        reset = []
        assigned = list(consumer.assignment())
        for tp in assigned:
            try:
                end = kafka.highwater(tp)
            except AssertionError:  # no longer assigned
                continue
            if end is None:  # nothing fetched yet
                continue
            read = consumer._read_offset.get(tp)
            committed = consumer._committed_offset.get(tp)
            # where this worker was: each is at most the log's end while the log holds what it held
            beyond = max(v for v in (read, committed, _position(kafka, tp), -1) if v is not None)
            if beyond <= end:
                continue
            if not self._settled(tp):
                continue  # records of the old log are still being applied: their acks come first
            log.warning("%s[%d]: the broker's log ends at %d, below where this worker was (%d): it lost that "
                        "log; reading it again from the beginning (what was applied before is skipped by event id)",
                        tp.topic, tp.partition, end, beyond)
            for state in (consumer._acked, consumer._acked_index, consumer._gap, consumer._read_offset,
                          consumer._committed_offset):
                state.pop(tp, None)
            await thread.call_thread(_rewind, kafka, TopicPartition(tp.topic, tp.partition))
            self._counter.inc()
            reset.append(tp)
        return reset

    def _settled(self, tp: Any) -> bool:
        """Every record delivered from the partition has been applied and acked: none waits in an agent's queue,
        none taken is unacked (an ack after the reset would commit an offset of the old log)."""
        consumer: Any = self.app.consumer
        if any(message.tp == tp for message in list(consumer._unacked_messages)):
            return False
        return not any(getattr(event, "message", None) is not None and event.message.tp == tp
                       for queue in self.queues for event in list(getattr(queue, "_queue", ())))


async def _rewind(kafka: Any, tp: TopicPartition) -> None:
    """Seek to where the log begins now, in the consumer's thread. An explicit offset: `seek_to_beginning` leaves
    the position unknown until the reset is done, and Faust's livelock check asserts on an unknown position."""
    start = (await kafka.beginning_offsets([tp]))[tp]
    kafka.seek(tp, start)


def _position(kafka: Any, tp: Any) -> int | None:
    """The next offset the consumer fetches (aiokafka's private partition state, read as is: an int), or None."""
    try:
        state = kafka._subscription.subscription.assignment.state_value(tp)
    except Exception:  # no subscription or assignment right now
        return None
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def build_app(
    *,
    group: str,
    settings: WorkerSettings,
    sources: list[TopicSpec],
    processor: BatchProcessor,
    extra: Callable[[faust.App], None] | None = None,
) -> faust.App:
    app = BackboneApp(
        group,
        fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
        broker=broker_urls(settings.kafka_bootstrap_servers),
        store="memory://",
        web_host=settings.host,  # the host in the URLs Faust builds
        web_bind=settings.host,  # the interface it listens on: Faust's default is every interface (0.0.0.0)
        web_port=settings.port_for(group),
        web_enabled=True,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=settings.consumer_stream_buffer,
        broker_session_timeout=settings.consumer_session_timeout,
        broker_heartbeat_interval=settings.consumer_heartbeat_interval,
        broker_rebalance_timeout=settings.consumer_rebalance_timeout,
        broker_commit_interval=settings.consumer_commit_interval,
        producer_acks=-1,
        datadir=str(settings.consumer_data_dir / group),
    )

    guard = LogResetGuard(app, lambda: Counter(
        "consumer_log_resets", "Partitions read again from the beginning because the broker lost their log under the "
        "worker", ["group"], registry=processor.metrics.registry).labels(group=group))
    partitions = {spec.name: spec.partitions for spec in sources}
    for spec in sources:
        topic = app.topic(spec.name, partitions=spec.partitions, key_serializer="raw", value_serializer="raw")

        async def agent(stream: Any) -> None:
            processor.dlq.partitions.update(partitions)  # DLQ topics are declared like their sources
            async for batch in take_batches(stream, settings.consumer_batch_max, settings.consumer_batch_within,
                                            guard.queues):
                await processor.process([to_raw(event.message) for event in batch])
                for event in batch:
                    await stream.ack(event)

        app.agent(topic, name=f"{group}.{spec.name}")(agent)

    kafka = KafkaProbe(settings.kafka_bootstrap_servers)

    async def database() -> None:
        pool = await processor.pool()
        await pool.fetchval("SELECT 1", timeout=2)

    @app.page("/health")
    async def health(view: web.View, _request: web.Request) -> web.Response:
        ok, checks = await run_probes({"database": database, "broker": kafka})
        body = {"status": "ok" if ok else "unavailable", "checks": checks,
                "dependencies_breaker": processor.breaker.state.label}
        return view.json(body, status=200 if ok else 503)

    @app.page("/metrics")
    async def metrics(view: web.View, _request: web.Request) -> web.Response:
        # as a header: aiohttp refuses a content_type argument that carries a charset (it answered 500)
        return view.bytes(generate_latest(processor.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.timer(interval=settings.consumer_log_reset_check)  # type: ignore[untyped-decorator]
    async def read_lost_logs_again() -> None:
        try:
            await guard.check()
        except Exception as exc:  # a check that failed is made again at the next interval
            log.warning("checking for partitions whose log the broker lost failed: %r", exc)

    @app.timer(interval=3600.0, on_leader=False)  # type: ignore[untyped-decorator]
    async def forget_old_event_ids() -> None:
        retention = settings.consumer_dedupe_retention_days * 86400
        try:
            pool = await processor.pool()
            while await dedupe.forget_older_than(pool, retention) > 0:
                pass
            while await dlq.forget_older_than(pool, retention) > 0:  # the dead letters' copies: kept as long
                pass
        except Exception as exc:  # housekeeping: the next run tries again
            log.warning("dedupe cleanup failed: %r", exc)

    if extra is not None:
        extra(app)
    return app


def run_worker(app: faust.App, settings: WorkerSettings) -> None:
    settings.consumer_data_dir.mkdir(parents=True, exist_ok=True)
    worker = faust.Worker(app, loglevel=settings.log_level.lower())
    worker.execute_from_commandline()
