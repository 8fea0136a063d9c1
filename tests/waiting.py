"""Wait for a condition with a deadline (never a fixed sleep)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from eventbus.stack.ports import free_port

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition",
                     interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = await check()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


def eventually_sync(check: Callable[[], T], *, timeout: float = 20.0, what: str = "condition",
                    interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
            if result:
                return result
            last = result
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


__all__ = ["eventually", "eventually_sync", "free_port"]
