"""`StagedRecords`: a conversation's target records (`TurnContext.records`) as one turn sees them.

Reads see the records committed by earlier turns (through a `RecordReader`, which the owner is) plus this turn's
own writes; the writes are only kept aside here. `ledger.completed` turns them into ops of the turn's one commit,
so a failed, cut or crashed turn leaves none behind.

Must not import: the actor, the system or the store.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol


class RecordReader(Protocol):
    """Reads a conversation's committed target records (kind "checkpoints")."""

    def target_record(self, path: str, name: str) -> dict[str, Any] | None:
        """The committed record `name` of conversation `path`, if there is one."""
        ...

    def target_records(self, path: str) -> list[tuple[str, dict[str, Any]]]:
        """Every committed record of conversation `path`, by name in order."""
        ...


Staged = dict[str, dict[str, Any] | None]
"""A turn's writes to its records by name; None marks a deletion."""


class StagedRecords:
    """The `TurnRecords` of one turn. A lock makes `put` and `delete` safe from another thread (an adapter's
    event loop) while the turn runs; `get` and `items` read the store and belong on the turn's trio task."""

    __slots__ = ("_lock", "_path", "_reader", "_staged")

    def __init__(self, reader: RecordReader, path: str) -> None:
        self._reader = reader
        self._path = path
        self._staged: Staged = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            if key in self._staged:
                return self._staged[key]
        return self._reader.target_record(self._path, key)

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        found = dict(self._reader.target_records(self._path))
        with self._lock:
            for key, value in self._staged.items():
                if value is None:
                    found.pop(key, None)
                else:
                    found[key] = value
        return sorted(found.items())

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._staged[key] = value

    def delete(self, key: str) -> None:
        with self._lock:
            self._staged[key] = None

    def staged(self) -> Staged:
        """A copy of this turn's writes (empty when it wrote none), for `ledger.completed`."""
        with self._lock:
            return dict(self._staged)
