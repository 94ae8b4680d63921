"""`retried`: run a change computed from fresh reads until its conditional commit holds (others' writes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from afactors.store._integrity import StoreError

ATTEMPTS = 16
T = TypeVar("T")


async def retried(attempt: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Run `attempt` (a change computed from fresh reads, committed on condition that they still hold; None when
    another writer changed them meanwhile) until it commits; `StoreError` naming `what` when they keep changing."""
    for _ in range(ATTEMPTS):
        result = await attempt()
        if result is not None:
            return result
    raise StoreError(f"{what} changed under {ATTEMPTS} attempts in a row (other nodes); try again")
