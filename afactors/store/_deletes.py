"""`delete_unchanged`: delete rows only if they are still as read, for sweeps that race with their writers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from afactors.store._interface import Delete, Expect, Store


async def delete_unchanged(store: Store, kind: str, rows: Sequence[tuple[str, Any]]) -> int:
    """Delete the `(key, value)` rows of `kind` that are still as read: all in one commit, or (when one changed
    meanwhile) one by one. How many it deleted."""
    if not rows:
        return 0
    if await store.commit([Delete(kind, key) for key, _ in rows],
                          expect=[Expect(kind, key, value) for key, value in rows]):  # fmt: skip
        return len(rows)
    deleted = 0
    for key, value in rows:
        deleted += await store.commit([Delete(kind, key)], expect=[Expect(kind, key, value)])
    return deleted
