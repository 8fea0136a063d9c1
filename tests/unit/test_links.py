"""A synchronous link's breaker (seed 001): closed -> open after the threshold, calls refused while open,
one trial in half-open, closed again by a success; timeouts and 5xx are failures, 4xx answers are not."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from eventbus.links import Link, LinkUnavailable
from eventbus.resilience import BreakerState


class Dependency:
    """A dependency whose health the test sets; counts the calls that reach it."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0
        self.hang = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.status == 0:
            raise httpx.ConnectError("refused", request=request)
        if self.status == -1:
            await self.hang.wait()
        return httpx.Response(self.status, json={"ok": True})


def _link(dependency: Dependency, **kw: float) -> Link:
    return Link("dep", "http://dep", timeout=kw.pop("timeout", 1.0), failure_threshold=3,
                reset_timeout=kw.pop("reset", 0.2), transport=httpx.MockTransport(dependency))


async def test_the_breaker_opens_after_the_threshold_and_refuses_without_calling() -> None:
    dep = Dependency()
    link = _link(dep)
    dep.status = 503
    for _ in range(3):
        with pytest.raises(LinkUnavailable, match="HTTP 503"):
            await link.request("GET", "/x")
    assert link.breaker.state is BreakerState.OPEN
    with pytest.raises(LinkUnavailable, match="circuit open") as refused:
        await link.request("GET", "/x")
    assert dep.calls == 3 and refused.value.retry_after >= 0.2
    assert link.status()["rejected"] == 1 and link.status()["failed"] == 3


async def test_half_open_lets_one_trial_through_and_a_success_closes_it() -> None:
    dep = Dependency()
    link = _link(dep)
    dep.status = 0
    for _ in range(3):
        with pytest.raises(LinkUnavailable):
            await link.request("GET", "/x")
    await asyncio.sleep(0.25)
    dep.status, calls = -1, dep.calls  # the trial hangs: a second caller meanwhile is refused
    trial = asyncio.create_task(link.request("GET", "/x"))
    await asyncio.sleep(0.05)
    assert link.breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(LinkUnavailable, match="circuit open"):
        await link.request("GET", "/x")
    dep.status = 200
    dep.hang.set()
    assert (await trial).status_code == 200
    assert link.breaker.state is BreakerState.CLOSED and dep.calls == calls + 1


async def test_a_failed_trial_reopens_and_a_cancelled_one_does_not_wedge_half_open() -> None:
    dep = Dependency()
    link = _link(dep)
    dep.status = 500
    for _ in range(3):
        with pytest.raises(LinkUnavailable):
            await link.request("GET", "/x")
    await asyncio.sleep(0.25)
    with pytest.raises(LinkUnavailable, match="HTTP 500"):
        await link.request("GET", "/x")  # the trial fails: open again
    assert link.breaker.state is BreakerState.OPEN
    await asyncio.sleep(0.25)
    dep.status = -1
    trial = asyncio.create_task(link.request("GET", "/x"))
    await asyncio.sleep(0.05)
    trial.cancel()  # the caller gave up mid-trial (a client disconnect)
    with pytest.raises(asyncio.CancelledError):
        await trial
    dep.status = 200
    assert (await link.request("GET", "/x")).status_code == 200  # the next caller may try
    assert link.breaker.state is BreakerState.CLOSED


async def test_timeouts_count_as_failures_and_4xx_answers_do_not() -> None:
    dep = Dependency()
    link = _link(dep, timeout=0.05)
    dep.status = -1
    with pytest.raises(LinkUnavailable, match="Timeout"):
        await link.request("GET", "/x")
    assert link.breaker.consecutive_failures == 1
    dep.status = 404
    assert (await link.request("GET", "/x")).status_code == 404
    assert link.breaker.consecutive_failures == 0 and link.breaker.state is BreakerState.CLOSED
