"""How the worker hands records to the processor: bulk batches off the agent's queue, eager delivery.

Faust is the edge here: a fake stream with mode's real ThrowableQueue stands in for the agent's stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from mode import Service
from mode.utils.queues import FlowControlEvent, ThrowableQueue

from eventbus.consumer.transport import EagerFirstWait
from eventbus.consumer.worker import take_batches


@dataclass(eq=False)
class FakeMessage:
    offset: int
    generation_id: int = 1
    tracked: bool = False


@dataclass(eq=False)
class FakeEvent:
    message: FakeMessage


class FakeFlow:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


@dataclass
class FakeConsumer:
    tracked: list[int] = field(default_factory=list)

    def track_message(self, message: FakeMessage) -> None:
        self.tracked.append(message.offset)


@dataclass
class FakeApp:
    consumer: FakeConsumer = field(default_factory=FakeConsumer)
    flow_control: FakeFlow = field(default_factory=FakeFlow)
    consumer_generation_id: int = 1


class FakeChannel:
    def __init__(self) -> None:
        self.queue: ThrowableQueue = ThrowableQueue(flow_control=FlowControlEvent())
        self.stopped = False

    def __aiter__(self) -> FakeChannel:
        return self

    async def __anext__(self) -> Any:
        return await self.queue.get()

    def on_stop_iteration(self) -> None:
        self.stopped = True


@dataclass
class FakeStream:
    app: FakeApp = field(default_factory=FakeApp)
    channel: FakeChannel = field(default_factory=FakeChannel)

    def put(self, *offsets: int, generation_id: int = 1) -> None:
        for offset in offsets:
            self.channel.queue.put_nowait(FakeEvent(FakeMessage(offset, generation_id)))


def offsets(batch: list[Any]) -> list[int]:
    return [event.message.offset for event in batch]


async def test_a_batch_takes_everything_queued_up_to_the_maximum() -> None:
    stream = FakeStream()
    stream.put(*range(7))
    batches = take_batches(stream, 5, within=0)
    assert offsets(await anext(batches)) == [0, 1, 2, 3, 4]
    assert offsets(await anext(batches)) == [5, 6]
    assert stream.app.consumer.tracked == list(range(7))  # a rebalance waits for their acks
    await batches.aclose()
    assert stream.channel.stopped


async def test_a_partial_batch_waits_within_for_more() -> None:
    stream = FakeStream()
    stream.put(0)
    asyncio.get_running_loop().call_later(0.01, stream.put, 1, 2)
    batches = take_batches(stream, 500, within=0.1)
    assert offsets(await anext(batches)) == [0, 1, 2]
    await batches.aclose()


async def test_records_of_an_earlier_generation_are_skipped_unacked_and_untracked() -> None:
    stream = FakeStream()
    stream.put(0, 1, generation_id=1)
    stream.app.consumer_generation_id = 2  # a rebalance happened; the consumer seeks back and delivers again
    stream.put(0, 1, 2, generation_id=2)
    batches = take_batches(stream, 500, within=0)
    assert offsets(await anext(batches)) == [0, 1, 2]
    assert stream.app.consumer.tracked == [0, 1, 2]
    await batches.aclose()


async def test_the_app_stopping_ends_the_batches() -> None:
    stream = FakeStream()
    batches = take_batches(stream, 500, within=0)
    waiting = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)
    stream.channel.queue._throw(StopAsyncIteration())  # what Faust does to end iteration over a channel
    try:
        await waiting
        raise AssertionError("expected the batches to end")
    except StopAsyncIteration:
        pass
    assert stream.channel.stopped


class Waiter(EagerFirstWait, Service):
    pass


async def test_eager_wait_first_returns_a_coroutine_that_finishes_without_waiting() -> None:
    service = Waiter()
    flow = asyncio.Event()

    async def deliver() -> int:
        return 42

    first = deliver()
    result = await service.wait_first(first, flow.wait())  # the unstarted flow.wait() is closed, not leaked
    assert (result.done, result.results, result.stopped) == ([first], [42], False)


async def test_eager_wait_first_races_a_coroutine_that_has_to_wait() -> None:
    service = Waiter()
    flow = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow() -> int:
        await asyncio.sleep(0.01)
        return 7

    first = slow()
    assert (await service.wait_first(first, flow.wait())).results == [7]

    async def blocked() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    asyncio.get_running_loop().call_later(0.01, flow.set)
    result = await service.wait_first(blocked(), flow.wait())  # flow suspended first: delivery is abandoned
    assert result.results == [True]
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_eager_wait_first_propagates_errors() -> None:
    service = Waiter()

    async def now() -> None:
        raise ValueError("at once")

    async def later() -> None:
        await asyncio.sleep(0)
        raise KeyError("after a suspension")

    for failing, error in ((now, ValueError), (later, KeyError)):
        try:
            await service.wait_first(failing(), asyncio.Event().wait())
            raise AssertionError("expected an error")
        except error:
            pass


async def test_a_trickle_does_not_linger_and_takes_what_the_conductor_hands_over() -> None:
    stream = FakeStream()
    # within=60: a batch that lingered would miss the deadlines below by far
    batches = take_batches(stream, 500, within=60, busy=False)
    stream.put(0)
    assert offsets(await asyncio.wait_for(anext(batches), 30)) == [0]
    stream.put(1)
    asyncio.get_running_loop().call_soon(stream.put, 2, 3)  # a loop turn later, as the conductor past 100 records
    assert offsets(await asyncio.wait_for(anext(batches), 30)) == [1, 2, 3]
    await batches.aclose()


async def test_a_busy_stream_keeps_lingering() -> None:
    stream = FakeStream()
    stream.put(*range(4))
    batches = take_batches(stream, 4, within=0.05)
    assert offsets(await anext(batches)) == [0, 1, 2, 3]  # full: busy
    stream.put(4)
    asyncio.get_running_loop().call_later(0.01, stream.put, 5)
    assert offsets(await anext(batches)) == [4, 5]  # lingered for the late one
    stream.put(6)
    asyncio.get_running_loop().call_later(0.01, stream.put, 7)
    assert offsets(await anext(batches)) == [6, 7]  # half full (2 of 4) is still busy
    stream.put(8)
    assert offsets(await anext(batches)) == [8]
    await batches.aclose()
