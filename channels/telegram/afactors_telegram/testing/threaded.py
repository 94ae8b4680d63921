"""Run the fake in a background thread with its own trio loop, for asyncio or synchronous test code.

with fake_bot_api_in_thread(rate_limits=None) as handle:
    bot = telegram.Bot(handle.token, base_url=handle.base_url, base_file_url=handle.base_file_url)
    user = handle.run_sync(lambda fake: fake.user("Ann"))
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from afactors_telegram.testing.fake import FakeBotApi, open_fake_bot_api

T = TypeVar("T")
START_TIMEOUT = 10.0


class ThreadedFake:
    """Access to a fake running in another thread; all access goes through its trio loop."""

    def __init__(self, fake: FakeBotApi, token: trio.lowlevel.TrioToken) -> None:
        self._fake = fake
        self._token = token
        self.api_base = fake.api_base
        self.token = fake.token
        self.base_url = fake.base_url
        self.base_file_url = fake.base_file_url
        self.bot_url = fake.bot_url

    def run_sync(self, fn: Callable[[FakeBotApi], T]) -> T:
        """Call ``fn(fake)`` in the fake's thread and return its result."""
        return trio.from_thread.run_sync(fn, self._fake, trio_token=self._token)

    def run(self, fn: Callable[[FakeBotApi], Awaitable[T]]) -> T:
        """Await ``fn(fake)`` in the fake's thread (blocks this thread until it finishes)."""
        return trio.from_thread.run(fn, self._fake, trio_token=self._token)


@contextmanager
def fake_bot_api_in_thread(**options: Any) -> Iterator[ThreadedFake]:
    """:func:`open_fake_bot_api` in a daemon thread; ``options`` are its keyword arguments."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        stop = trio.Event()
        async with open_fake_bot_api(**options) as fake:
            box["handle"] = ThreadedFake(fake, trio.lowlevel.current_trio_token())
            box["stop"] = stop
            ready.set()
            await stop.wait()

    def main() -> None:
        try:
            trio.run(serve)
        except BaseException as error:
            box["error"] = error
        finally:
            ready.set()

    thread = threading.Thread(target=main, name="fake-bot-api", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT) or "handle" not in box:
        raise RuntimeError("the fake Bot API did not start") from box.get("error")
    try:
        yield box["handle"]
    finally:
        trio.from_thread.run_sync(box["stop"].set, trio_token=box["handle"]._token)
        thread.join(START_TIMEOUT)
        if "error" in box:
            raise RuntimeError("the fake Bot API failed") from box["error"]
