"""The asyncio loop thread bridge: order, failures and cancellation in both directions, never a hang."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
import trio

from afactors_agent_framework.bridge import AsyncioThread, BridgeClosed

from .conftest import eventually


async def test_items_arrive_in_order_from_the_loop_thread() -> None:
    threads: set[str] = set()

    async def produce() -> AsyncIterator[int]:
        for i in range(1000):
            threads.add(threading.current_thread().name)
            await asyncio.sleep(0)
            yield i

    async with AsyncioThread() as bridge:
        assert [i async for i in bridge.stream(produce)] == list(range(1000))
        assert await bridge.call(lambda: asyncio.sleep(0, result="done")) == "done"
    assert threads == {"afactors-asyncio"}


async def test_an_asyncio_failure_is_raised_on_the_trio_side() -> None:
    async def fail() -> AsyncIterator[int]:
        yield 1
        raise ValueError("broken on asyncio")

    async with AsyncioThread() as bridge:
        got: list[int] = []
        with pytest.raises(ValueError, match="broken on asyncio"):
            async for item in bridge.stream(fail):
                got.append(item)
        assert got == [1]


async def test_cancelling_the_trio_side_cancels_the_asyncio_task_and_waits_for_its_cleanup() -> None:
    state = {"started": False, "cleaned": False}

    async def forever() -> AsyncIterator[int]:
        state["started"] = True
        try:
            await asyncio.Event().wait()
            yield 0
        finally:
            await asyncio.sleep(0.01)  # cleanup that itself awaits
            state["cleaned"] = True

    async with AsyncioThread() as bridge:
        with trio.move_on_after(10) as scope:
            async with trio.open_nursery() as nursery:

                async def consume() -> None:
                    async for _ in bridge.stream(forever):
                        pass

                nursery.start_soon(consume)
                await eventually(lambda: state["started"])
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught
        assert state["cleaned"]  # the trio side returned only after the asyncio side unwound


async def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    stopped = threading.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0)
        finally:  # cancelled while running, or closed while waiting for the consumer: either way it ends here
            stopped.set()

    async with AsyncioThread() as bridge:
        stream = bridge.stream(endless)
        async for i in stream:
            if i == 3:
                break
        await stream.aclose()
        assert stopped.is_set()  # before aclose returned


async def test_using_a_bridge_that_is_not_running_is_a_clear_error() -> None:
    async def one() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(BridgeClosed, match="not running"):
        async for _ in AsyncioThread().stream(one):
            pass
