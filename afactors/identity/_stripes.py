"""Striped locks: a fixed set of trio locks, names hashed onto them, taken in one order (no deadlock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio


class Stripes:
    """`hold(*names)` serialises work on the same names while unrelated names mostly proceed in parallel."""

    def __init__(self, count: int = 4096) -> None:
        self._locks = [trio.Lock() for _ in range(count)]

    @asynccontextmanager
    async def hold(self, *names: str) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for index in sorted({hash(name) % len(self._locks) for name in names}):
                await stack.enter_async_context(self._locks[index])
            yield
