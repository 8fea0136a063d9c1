"""Faust's aiokafka transport with a configurable fetch wait and a cheaper per-message hand-off.

Faust hard-codes `fetch_max_wait_ms=1500`. On Tansu a waiting fetch is not always answered when
records arrive, so each hop then costs up to the whole wait (measured: ~250 ms median per hop at
500 ms, 7 ms at 20 ms). A short wait bounds that; on Apache Kafka it only means a few more empty
fetches per second.

Faust's fetch loop hands every message to the conductor through
`wait_first(callback(message), suspend_flow.wait())`: four tasks and several loop turns per message.
`_Consumer.wait_first` runs the first coroutine eagerly instead and only races it against the others
when it actually has to wait (`make bench-consumer`, Faust worker with a no-op processor: 195 -> 76 us
of worker CPU per record).
"""

from __future__ import annotations

import asyncio
import logging
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

import faust
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer, Transport
from faust.types import TransportT
from mode import Service
from mode.services import WaitResults


class _ConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # read by AIOKafkaConsumer.start(), which has not run yet
        consumer._fetch_max_wait_ms = getattr(self.app, "fetch_max_wait_ms", 1500)
        return consumer


@types.coroutine
def _resume(coro: Coroutine[Any, Any, Any], suspended_on: Any) -> Generator[Any, Any, Any]:
    """Continue `coro`, which has run up to yielding `suspended_on`, as `await coro` would have."""
    yielded = suspended_on
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation and anything else thrown in go to the coroutine
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                yielded = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def _finish(coro: Coroutine[Any, Any, Any], suspended_on: Any) -> Any:
    return await _resume(coro, suspended_on)


class EagerFirstWait(Service):
    """A mode Service whose `wait_first` does not start a task for a first coroutine that need not wait."""

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """`Service.wait_first`, with the first coroutine run eagerly up to its first suspension.

        Faust's only caller is the fetch loop, once per message, with the conductor's callback first.
        The callback usually finishes without suspending (it only waits while the stream buffer is
        full, the flow is suspended or the producer buffer is full); it then won the race as it would
        have as the first task to run, and the other coroutines are closed unstarted. Otherwise the
        rest of it races the others exactly as before.
        """
        first = coros[0] if coros else None
        if not asyncio.iscoroutine(first):
            return await super().wait_first(*coros, timeout=timeout)
        others = coros[1:]
        try:
            suspended_on = first.send(None)
        except StopIteration as stop:
            _close(others)
            if self._stopped.is_set() or self._crashed.is_set():
                return WaitResults([], [], True)
            return WaitResults([first], [stop.value], False)
        except BaseException:
            _close(others)
            raise
        rest = _finish(first, suspended_on)
        results = await super().wait_first(rest, *others, timeout=timeout)
        return WaitResults([first if c is rest else c for c in results.done], results.results, results.stopped)


def _close(coros: tuple[Any, ...]) -> None:
    for coro in coros:
        if asyncio.iscoroutine(coro):
            coro.close()


class _Consumer(EagerFirstWait, Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(Transport):
    Consumer = _Consumer


class BackboneApp(faust.App):
    """A Faust app whose consumer waits at most `fetch_max_wait_ms` for records."""

    def __init__(self, *args: Any, fetch_max_wait_ms: int = 50, **kwargs: Any) -> None:
        self.fetch_max_wait_ms = fetch_max_wait_ms
        #: awaited when the worker stops (e.g. the control loop marks the instance stopped)
        self.stop_hooks: list[Callable[[], Awaitable[None]]] = []
        super().__init__(*args, **kwargs)

    async def on_stop(self) -> None:
        for hook in self.stop_hooks:
            try:
                await hook()
            except Exception as exc:  # stopping goes on whatever a hook does
                logging.getLogger(__name__).warning("stop hook failed: %r", exc)
        await super().on_stop()

    def _new_transport(self) -> TransportT:
        return _Transport(self.conf.broker_consumer, self)
