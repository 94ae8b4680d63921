"""`AsyncioThread`: one asyncio event loop in a dedicated thread, driven from trio with cancellation both ways.

Agent Framework runs on asyncio (its tool loop uses `asyncio.create_task`, `gather` and `to_thread`), afactors'
core on trio. The bridge keeps asyncio out of the core and out of the host's trio thread: the loop lives for the
host's lifetime (so clients that pool connections on it keep them across turns), and importing it changes no
process-wide asyncio policy (trio-asyncio would; see docs/performance.md for the measured comparison).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import trio

T = TypeVar("T")

CANCEL_GRACE = 5.0
"""Seconds a cancelled turn waits for the asyncio side to unwind (its `finally` blocks) before giving up."""

WINDOW = 256
"""Items the asyncio side may run ahead of the trio consumer before it waits (backpressure across threads)."""


class BridgeClosed(RuntimeError):
    """The asyncio loop thread is not running (the host has not started it, or has stopped it)."""


class AsyncioThread:
    """An asyncio loop in its own thread; `async with` starts and stops it.

    `stream(factory)` runs `factory()` (an async iterator) on the loop and yields its items in trio. Cancelling
    the trio side cancels the asyncio task and waits for it to unwind; an exception on the asyncio side is
    raised on the trio side. `call(factory)` is the same for one awaitable.
    """

    def __init__(self, name: str = "afactors-asyncio") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    async def __aenter__(self) -> AsyncioThread:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.SelectorEventLoop()  # explicit: never whatever loop policy the process has
            asyncio.set_event_loop(loop)
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
                tasks = asyncio.all_tasks(loop)
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        await trio.to_thread.run_sync(ready.wait)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(thread.join)

    async def call(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Await `factory()` on the loop and return its result."""

        async def one() -> AsyncGenerator[T, None]:
            yield await factory()

        [result] = [item async for item in self.stream(one)]
        return result

    async def stream(self, factory: Callable[[], AsyncGenerator[T, None]]) -> AsyncGenerator[T, None]:
        """Iterate `factory()` on the loop; its items arrive here in order."""
        loop = self._loop
        if loop is None:
            raise BridgeClosed("the asyncio bridge is not running: enter the target (the host does) before a turn")
        token = trio.lowlevel.current_trio_token()
        send, receive = trio.open_memory_channel[tuple[str, Any]](math.inf)  # bounded by the window below
        window: list[asyncio.Semaphore] = []

        def put(message: tuple[str, Any]) -> None:  # runs in trio: must never raise (it would crash the run)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):  # the consumer gave up
                send.send_nowait(message)

        def deliver(kind: str, value: Any) -> None:
            with contextlib.suppress(trio.RunFinishedError):  # the trio side is gone; nothing waits for this
                token.run_sync_soon(put, (kind, value))

        async def pump() -> None:
            credits = asyncio.Semaphore(WINDOW)
            window.append(credits)
            async with contextlib.aclosing(factory()) as items:  # closed on the loop, before the task is done
                async for item in items:
                    await credits.acquire()
                    deliver("item", item)

        tasks: list[asyncio.Task[None]] = []

        def start() -> None:  # on the loop; the done callback runs once the task has truly finished
            task = loop.create_task(pump())
            task.add_done_callback(lambda done: deliver("done", done))
            tasks.append(task)

        loop.call_soon_threadsafe(start)
        finished = False
        try:
            while True:
                kind, value = await receive.receive()
                if kind == "item":
                    loop.call_soon_threadsafe(window[0].release)
                    yield value
                    continue
                finished = True
                if value.cancelled():
                    raise BridgeClosed("the asyncio side was cancelled (its loop is stopping)")
                error = value.exception()
                if error is not None:
                    raise error
                return
        finally:
            if not finished:  # cancelled (or the consumer stopped early): cancel the asyncio side and wait for it
                loop.call_soon_threadsafe(lambda: tasks[0].cancel())  # runs after start(): callbacks keep order
                with trio.move_on_after(CANCEL_GRACE) as waiting:
                    waiting.shield = True
                    while (await receive.receive())[0] == "item":
                        pass
            receive.close()


class BridgedTarget:
    """Base of the adapted targets: owns an `AsyncioThread`, started and stopped by `async with` (the host's)."""

    def __init__(self, wrapped: object, bridge: AsyncioThread | None) -> None:
        self.bridge = bridge or AsyncioThread()
        self._label = getattr(wrapped, "name", None) or type(wrapped).__name__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label!r})"

    async def __aenter__(self) -> BridgedTarget:
        await self.bridge.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.bridge.__aexit__(exc_type, exc, tb)
