"""`Leadership`: a named role that one host at a time holds among the hosts sharing a store.

A store with one host (LMDB: its state directory is locked to one process) gives `SoleLeadership`: held at once,
never lost. The PostgreSQL store gives a session advisory lock on a connection of its own (`_pg_leader`).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class Leadership(abc.ABC):
    """One host's claim on a named role, open for as long as its `async with` block.

    `try_acquire()` takes the role if it is free; `acquire()` waits until it has it. Once held, `lost` is set
    when the claim can no longer be vouched for (the lock's connection dropped or stopped answering): the holder
    must stop acting as the leader at once, and open a new `Leadership` to lead again. Leaving the block gives
    the role up.
    """

    def __init__(self) -> None:
        self.lost = trio.Event()

    @abc.abstractmethod
    async def try_acquire(self) -> bool:
        """Take the role if no other host holds it; True if this claim holds it now."""

    @abc.abstractmethod
    async def acquire(self) -> None:
        """Wait until this claim holds the role."""


class SoleLeadership(Leadership):
    """The leadership of a store only one host opens: always held."""

    async def try_acquire(self) -> bool:
        return True

    async def acquire(self) -> None:
        return


@asynccontextmanager
async def sole_leadership() -> AsyncIterator[Leadership]:
    """A `SoleLeadership` (what `Store.leadership` gives where one host has the store)."""
    yield SoleLeadership()
