from __future__ import annotations

import random

from eventbus.resilience import Backoff, BreakerState, CircuitBreaker, CircuitOpenError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    backoff = Backoff(base=0.1, cap=2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(50)]
    for attempt, delay in enumerate(delays):
        assert 0 <= delay <= min(2.0, 0.1 * 2**attempt)
    assert max(delays[10:]) > 1.0  # it does grow to the cap, not stay small
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_backoff_survives_very_long_outages() -> None:
    backoff = Backoff(base=0.1, cap=5.0, attempt=10_000)
    assert 0 <= backoff.next_delay() <= 5.0


def test_breaker_opens_after_threshold_and_half_opens_after_reset_timeout() -> None:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker("k", failure_threshold=3, reset_timeout=5, clock=clock, on_change=changes.append)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in() == 5
    clock.now = 5
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()          # one trial
    assert not breaker.allow()      # and only one
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_trial_reopens_for_a_full_reset_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("k", failure_threshold=1, reset_timeout=5, clock=clock)
    breaker.record_failure()
    clock.now = 5
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_in() == 5
    try:
        breaker.check()
    except CircuitOpenError as exc:
        assert "open" in str(exc) and exc.retry_in == 5
    else:
        raise AssertionError("check() must raise while open")


def test_released_trial_lets_the_next_call_try() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("k", failure_threshold=1, reset_timeout=1, clock=clock)
    breaker.record_failure()
    clock.now = 1
    assert breaker.allow()
    breaker.release_trial()
    assert breaker.allow()


def test_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("k", failure_threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_relay_config_refuses_lease_timings_that_would_idle_between_heartbeats() -> None:
    import pytest

    from eventbus.outbox.relay import RelayConfig

    RelayConfig()  # the defaults are consistent
    with pytest.raises(ValueError, match="RELAY_LEASE_TTL"):
        RelayConfig(lease_ttl=15.0, heartbeat_interval=2.0, publish_timeout=5.0)
