"""The LMDB store: record kinds, group commit, durability settings."""

from afactors.store._codec import HEAD_BYTES, MAX_KEY_BYTES, RecordDecodeError
from afactors.store._integrity import StoreDamaged, StoreError, StoreFull
from afactors.store._lmdb_store import (
    DATA_DIR,
    DURABILITIES,
    LOCK_FILE,
    Delete,
    Durability,
    Op,
    Put,
    StateDirLocked,
    Store,
    StoreClosed,
    StoreStats,
)
from afactors.store._records import (
    KINDS,
    DeadLetter,
    DedupRecord,
    Generic,
    InboxRecord,
    OutboxRecord,
    Quarantined,
    ResponseRecord,
    ResponseStatus,
    Snapshot,
    TurnRecord,
)
from afactors.store._salvage import salvage, verify

__all__ = [
    "DATA_DIR",
    "DURABILITIES",
    "HEAD_BYTES",
    "KINDS",
    "LOCK_FILE",
    "MAX_KEY_BYTES",
    "DeadLetter",
    "DedupRecord",
    "Delete",
    "Durability",
    "Generic",
    "InboxRecord",
    "Op",
    "OutboxRecord",
    "Put",
    "Quarantined",
    "RecordDecodeError",
    "ResponseRecord",
    "ResponseStatus",
    "Snapshot",
    "StateDirLocked",
    "Store",
    "StoreClosed",
    "StoreDamaged",
    "StoreError",
    "StoreFull",
    "StoreStats",
    "TurnRecord",
    "salvage",
    "verify",
]
