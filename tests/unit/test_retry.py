"""The shared retry loops: they retry only what they are told to, back off, reset after a success, and let
cancellation through."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from eventbus.resilience import Backoff
from eventbus.resilience.retry import forever, retry

log = logging.getLogger("test")


class Flaky:
    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return "ok"


async def test_retry_waits_the_backoff_between_failures_then_resets() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(base=1.0, cap=100.0, rng=random.Random(3))
    flaky = Flaky(3)
    assert await retry(flaky, what="x", backoff=backoff, log=log, retry_on=(ConnectionError,), sleep=sleep) == "ok"
    assert flaky.calls == 4 and len(slept) == 3
    assert slept[2] <= 4.0 and all(s >= 0 for s in slept)  # full jitter under 1, 2, 4
    assert backoff.attempt == 0  # reset by the success


async def test_retry_lets_other_errors_and_cancellation_through() -> None:
    with pytest.raises(ValueError):
        await retry(Flaky(1, ValueError), what="x", backoff=Backoff(), log=log, retry_on=(ConnectionError,))

    async def never() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(retry(never, what="x", backoff=Backoff(), log=log))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_forever_survives_any_failure_and_stops_when_told() -> None:
    calls: list[str] = []
    errors: list[BaseException] = []

    async def step() -> None:
        calls.append("step")
        if len(calls) == 1:
            raise ConnectionError("down")
        if len(calls) == 2:
            raise RuntimeError("a bug")

    async def sleep(_seconds: float) -> None:
        pass

    await forever(step, what="x", backoff=Backoff(base=0.01), log=log, stopped=lambda: len(calls) >= 4,
                  sleep=sleep, expected=(ConnectionError,), on_error=errors.append)
    assert len(calls) == 4 and [type(e) for e in errors] == [RuntimeError]
