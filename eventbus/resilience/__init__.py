"""Backoff and circuit breaking, shared by the relay, the consumers and the sync HTTP clients."""

from eventbus.resilience.backoff import Backoff
from eventbus.resilience.breaker import BreakerState, CircuitBreaker, CircuitOpenError

__all__ = ["Backoff", "BreakerState", "CircuitBreaker", "CircuitOpenError"]
