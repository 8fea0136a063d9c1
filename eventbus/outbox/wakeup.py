"""When the relay looks again: at once on a NOTIFY from the outbox's insert trigger, else after the poll
interval. The LISTEN connection is kept open, reopened with backoff when it drops (the relay polls meanwhile),
and a reconnect wakes the relay, since rows may have arrived unannounced."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from eventbus.failures import DB_UNAVAILABLE
from eventbus.outbox.ddl import NOTIFY_CHANNEL
from eventbus.resilience import Backoff
from eventbus.resilience.retry import Sleep, forever

log = logging.getLogger(__name__)


class Wakeup:
    def __init__(self, dsn: str, backoff: Backoff) -> None:
        self.dsn = dsn
        self.backoff = backoff
        self.notifications = 0
        self._wake = asyncio.Event()

    def notified(self, *_args: object) -> None:
        self.notifications += 1
        self._wake.set()

    async def listen(self, stopped: Callable[[], bool], sleep: Sleep) -> None:
        async def session() -> None:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            try:
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn: lost.set())
                await conn.add_listener(NOTIFY_CHANNEL, self.notified)
                self.backoff.reset()
                self._wake.set()  # rows may have arrived while we were not listening
                await lost.wait()
            finally:
                if not conn.is_closed():
                    conn.terminate()
            await sleep(self.backoff.next_delay())

        await forever(session, what="LISTEN connection (polling meanwhile)", backoff=self.backoff, log=log,
                      stopped=stopped, sleep=sleep, expected=DB_UNAVAILABLE)

    async def idle(self, seconds: float, stop: asyncio.Event) -> None:
        """Wait for a NOTIFY, `seconds` or `stop`, whichever comes first."""
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self._wake.clear()
