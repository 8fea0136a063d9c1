"""Run one service's relay as a process: `serve(service, topics)` from the service's `relay` module.

`python -m eventbus.outbox.main SERVICE TOPIC:PARTITIONS...` runs a relay for any outbox database
(tests and operators): the database is RELAY_DATABASE_URL (or the service's own `<SERVICE>_DATABASE_URL` for
management and hiring), else DATABASE_URL's server with the
database named like the service; the RELAY_* environment settings (RelaySettings) apply.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Collection, Sequence
from typing import Any

from eventbus.control import Control
from eventbus.db import plain_url
from eventbus.flags import LiveFlags
from eventbus.flags.spec import FlagSpec
from eventbus.health import KafkaProbe, run_probes
from eventbus.logs import setup_logging
from eventbus.ops import ops_app, start_ops_server
from eventbus.outbox.publisher import Idempotence
from eventbus.outbox.relay import Relay, RelayConfig
from eventbus.settings import CommonSettings
from eventbus.topics import TopicSpec


class RelaySettings(CommonSettings):
    #: /health and /metrics of each relay of this system: distinct, so relays started on their own do not
    #: collide; the stack reads the same fields. `port_for` says which setting wins.
    management_relay_port: int = 8101
    hiring_relay_port: int = 8102
    #: the port of whichever relay reads it (compose sets it per container; tests set it for a relay of theirs)
    relay_port: int | None = None
    relay_batch_size: int = 5000
    relay_poll_interval: float = 1.0
    relay_lease_ttl: float = 20.0
    relay_heartbeat_interval: float = 2.0
    relay_publish_timeout: float = 5.0
    relay_backoff_base: float = 0.2
    relay_backoff_cap: float = 10.0
    relay_breaker_threshold: int = 3
    relay_breaker_reset: float = 5.0
    relay_retention_hours: float = 24.0
    relay_cleanup_interval: float = 30.0
    relay_cleanup_batch: int = 5000
    relay_vacuum_after_deleted: int = 50_000
    relay_idempotence: Idempotence = "auto"
    relay_loss_check_interval: float = 2.0
    relay_loss_grace: float = 1.0
    #: the outbox's database when it is none of the services' (a relay for any outbox: tests, operators)
    relay_database_url: str | None = None
    #: a stable name for this relay (the stack gives each of its relays one): restarted, it renews its own
    #: leases at once instead of waiting RELAY_LEASE_TTL for them to expire. Never give two live relays one name.
    relay_instance_id: str | None = None

    def port_for(self, service: str) -> int:
        """`<SERVICE>_RELAY_PORT` when set, else RELAY_PORT, else the service's default above."""
        own = f"{service}_relay_port"
        if own in self.model_fields_set or (self.relay_port is None and own in type(self).model_fields):
            return int(getattr(self, own))
        if self.relay_port is not None:
            return self.relay_port
        raise ValueError(f"no port for the {service} relay: set RELAY_PORT")

    def config(self) -> RelayConfig:
        return RelayConfig(
            batch_size=self.relay_batch_size,
            poll_interval=self.relay_poll_interval,
            lease_ttl=self.relay_lease_ttl,
            heartbeat_interval=self.relay_heartbeat_interval,
            publish_timeout=self.relay_publish_timeout,
            backoff_base=self.relay_backoff_base,
            backoff_cap=self.relay_backoff_cap,
            breaker_threshold=self.relay_breaker_threshold,
            breaker_reset=self.relay_breaker_reset,
            retention_s=self.relay_retention_hours * 3600,
            cleanup_interval=self.relay_cleanup_interval,
            cleanup_batch=self.relay_cleanup_batch,
            vacuum_after_deleted=self.relay_vacuum_after_deleted,
            idempotence=self.relay_idempotence,
            loss_check_interval=self.relay_loss_check_interval,
            loss_grace=self.relay_loss_grace,
        )


async def _main(service: str, topics: list[TopicSpec], settings: RelaySettings, flags: Sequence[FlagSpec],
                retired: Callable[[LiveFlags], Collection[str]] | None) -> None:
    dsn = plain_url(settings.relay_database_url or settings.url_of(service))
    control = Control(dsn, name=f"{service}-relay", role="relay", specs=flags, interval=settings.control_interval)
    paused_flag = f"{service}.paused_topics"
    relay = Relay(
        service=service,
        dsn=dsn,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        topics=topics,
        config=settings.config(),
        paused_topics=(lambda: control.flags.value(paused_flag)) if paused_flag in control.flags.specs else None,
        retired_topics=(lambda: retired(control.flags)) if retired is not None else None,
        instance_id=settings.relay_instance_id,
    )
    control.report = lambda: {"relay": relay.status()}
    await control.start()
    kafka = KafkaProbe(settings.kafka_bootstrap_servers)

    async def database() -> None:
        if relay.pool is None:
            raise ConnectionError("no database pool yet")
        await relay.pool.fetchval("SELECT 1", timeout=2)

    async def outbox_tables() -> None:
        if relay.outdated is not None:
            raise RuntimeError(relay.outdated)

    async def health() -> tuple[bool, dict[str, Any]]:
        ok, checks = await run_probes({"database": database, "broker": kafka, "outbox_tables": outbox_tables})
        return ok, {"status": "ok" if ok else "unavailable", "checks": checks, "relay": relay.status()}

    runner = await start_ops_server(ops_app(health, relay.metrics.registry), settings.host,
                                    settings.port_for(service))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, relay.stop)
    try:
        await relay.run()
    finally:
        await control.stop()
        await kafka.close()
        await runner.cleanup()


def serve(service: str, topics: list[TopicSpec], flags: Sequence[FlagSpec] = (),
          retired: Callable[[LiveFlags], Collection[str]] | None = None) -> None:
    """Run `service`'s relay; `flags`: the service's switches (`<service>.paused_topics` holds topics back),
    `retired`: which of `topics` a playbook deleted for good, given the switches (never declared again)."""
    settings = RelaySettings()
    setup_logging(settings.log_level, f"{service}-relay")
    asyncio.run(_main(service, topics, settings, flags, retired))


def _topic(spec: str) -> TopicSpec:
    name, sep, partitions = spec.rpartition(":")
    if not sep or not name or not partitions.isdigit() or int(partitions) < 1:
        raise argparse.ArgumentTypeError(f"expected TOPIC:PARTITIONS, got {spec!r}")
    return TopicSpec(name, int(partitions))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m eventbus.outbox.main", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", help="service name: picks the database and labels logs and metrics")
    parser.add_argument("topics", nargs="+", type=_topic, metavar="TOPIC:PARTITIONS",
                        help="topics the relay declares before producing")
    args = parser.parse_args(argv)
    serve(args.service, args.topics)


if __name__ == "__main__":
    main()
