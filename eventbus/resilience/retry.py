"""The two retry loops every process needs, written once (with `Backoff`'s jittered delays):

- `retry`: call until it succeeds (declaring topics at start, reading the switches, a DLQ write);
- `forever`: a background duty that must outlive any failure (LISTEN, retention, the control loop).

Cancellation always goes through: only the exception kinds given are retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from eventbus.resilience.backoff import Backoff

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


async def retry(attempt: Callable[[], Awaitable[T]], *, what: str, backoff: Backoff, log: logging.Logger,
                retry_on: tuple[type[BaseException], ...] = (Exception,), sleep: Sleep = asyncio.sleep,
                on_failure: Callable[[BaseException], Awaitable[None]] | None = None) -> T:
    """`attempt()`'s result; after each failure of the `retry_on` kinds, wait the next backoff delay."""
    while True:
        try:
            result = await attempt()
        except retry_on as exc:
            delay = backoff.next_delay()
            log.warning("%s failed (%r); retrying in %.2fs", what, exc, delay)
            if on_failure is not None:
                await on_failure(exc)
            await sleep(delay)
            continue
        backoff.reset()
        return result


async def forever(step: Callable[[], Awaitable[None]], *, what: str, backoff: Backoff, log: logging.Logger,
                  stopped: Callable[[], bool], sleep: Sleep = asyncio.sleep,
                  expected: tuple[type[BaseException], ...] = (), floor: float = 0.0,
                  on_error: Callable[[BaseException], None] | None = None) -> None:
    """Run `step()` again and again until `stopped()`. An `expected` failure (a dependency down) is logged
    briefly and retried after the backoff; any other is logged with its traceback and retried after at least
    `floor` seconds (a bug should not spin). A success resets the backoff."""
    while not stopped():
        try:
            await step()
            backoff.reset()
        except expected as exc:
            delay = backoff.next_delay()
            log.info("%s: dependency unavailable (%r); retrying in %.2fs", what, exc, delay)
            await sleep(delay)
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            delay = max(backoff.next_delay(), floor)
            log.exception("%s failed; retrying in %.2fs", what, delay)
            await sleep(delay)
