"""How a relay runs: batch size, timings, backoff and breaker, retention; checked for consistency at once."""

from __future__ import annotations

from dataclasses import dataclass

from eventbus.outbox.publisher import Idempotence


@dataclass(frozen=True)
class RelayConfig:
    batch_size: int = 5000
    poll_interval: float = 1.0
    #: how long a dead relay's partitions wait before another relay takes them over
    lease_ttl: float = 20.0
    heartbeat_interval: float = 2.0
    publish_timeout: float = 5.0
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    breaker_threshold: int = 3
    breaker_reset: float = 5.0
    retention_s: float = 24 * 3600.0
    cleanup_interval: float = 30.0
    cleanup_batch: int = 5000
    cleanup_max_batches: int = 20
    #: VACUUM the outbox after this many rows were deleted (0: leave it to autovacuum). Every published
    #: row leaves two dead tuples (the mark, the delete); autovacuum looks at a table at most once a
    #: minute, and a busy outbox grows on disk without bound in between.
    vacuum_after_deleted: int = 50_000
    idempotence: Idempotence = "auto"
    #: how often a relay asks the broker whether it still holds what it confirmed (a new connection to the broker
    #: is always checked before anything is sent on it): an idle relay notices a lost log this late at most
    loss_check_interval: float = 2.0
    #: after a broker loss, how long a relay holds its lease partitions back before it publishes their window
    #: again: a running consumer notices that the log went back only while the new log is short of where it was
    #: (the workers look every CONSUMER_LOG_RESET_CHECK, 0.2 s)
    loss_grace: float = 1.0

    @property
    def round_budget(self) -> float:
        """The longest a publish round can take (aiokafka's timeout, then our backstop at twice it)."""
        return 2 * self.publish_timeout + 1

    def __post_init__(self) -> None:
        # A lease is used only while it has round_budget left; it is renewed every heartbeat_interval and
        # trusted for 0.8 * lease_ttl. Without slack the relay would sit idle between heartbeats.
        slack = 0.8 * self.lease_ttl - self.heartbeat_interval - self.round_budget
        if slack <= 0:
            raise ValueError(
                f"relay config: 0.8 * lease_ttl ({0.8 * self.lease_ttl:g}s) must exceed heartbeat_interval "
                f"({self.heartbeat_interval:g}s) + 2 * publish_timeout + 1 ({self.round_budget:g}s); "
                "raise RELAY_LEASE_TTL or lower RELAY_PUBLISH_TIMEOUT")
