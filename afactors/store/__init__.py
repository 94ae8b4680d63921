"""The LMDB store: record kinds, group commit, durability settings."""

from afactors.store.codec import HEAD_BYTES, MAX_KEY_BYTES, RecordDecodeError
from afactors.store.lmdb_store import (
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
    StoreError,
    StoreStats,
)
from afactors.store.records import (
    KINDS,
    DeadLetter,
    DedupRecord,
    Generic,
    InboxRecord,
    OutboxRecord,
    Quarantined,
    ResponseRecord,
    Snapshot,
    TurnRecord,
)

__all__ = [
    "DATA_DIR", "DURABILITIES", "HEAD_BYTES", "KINDS", "LOCK_FILE", "MAX_KEY_BYTES", "DeadLetter", "DedupRecord",
    "Delete", "Durability", "Generic", "InboxRecord", "Op", "OutboxRecord", "Put", "Quarantined", "RecordDecodeError",
    "ResponseRecord", "Snapshot", "StateDirLocked", "Store", "StoreClosed", "StoreError", "StoreStats", "TurnRecord",
]
