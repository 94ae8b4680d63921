"""Record and key encoding for the store: versioned values, hashed long keys."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from afactors.model import converter
from afactors.store.records import UPGRADES

MAX_KEY_BYTES = 400
"""Keys longer than this (LMDB allows 511) are stored under a hash; the full key is kept in the value."""

_HASHED = b"\x00#"


class RecordDecodeError(ValueError):
    """A stored value that no longer decodes into its record class."""


def encode_key(key: str) -> bytes:
    """The LMDB key for `key`: its UTF-8 bytes, or a hash of them when too long (never empty)."""
    raw = key.encode("utf-8")
    if not raw:
        raise ValueError("store keys must not be empty")
    if len(raw) > MAX_KEY_BYTES:
        return _HASHED + hashlib.sha256(raw).digest()
    return raw


def is_hashed(stored_key: bytes) -> bool:
    return stored_key.startswith(_HASHED)


def encode_value(record: Any, key: str, hashed: bool) -> bytes:
    """`{"v": schema, "d": data}` plus `"k": key` when the key was hashed."""
    doc: dict[str, Any] = {"v": type(record).SCHEMA, "d": converter.unstructure(record)}
    if hashed:
        doc["k"] = key
    return orjson.dumps(doc)


def decode_value(raw: bytes, cls: type, stored_key: bytes) -> tuple[str, Any]:
    """Decode a stored value into `(full key, record)`, upgrading old schema versions on the way."""
    try:
        doc = orjson.loads(raw)
        version, data = doc["v"], doc["d"]
        if is_hashed(stored_key):
            key = doc["k"]
            if encode_key(key) != stored_key:
                raise RecordDecodeError("hashed key does not match the key kept in the value")
        else:
            key = stored_key.decode("utf-8")
        while version < cls.SCHEMA:
            data = UPGRADES[(cls, version)](data)
            version += 1
        if version != cls.SCHEMA:
            raise RecordDecodeError(f"schema version {version} is newer than this code ({cls.SCHEMA})")
        return key, converter.structure(data, cls)
    except RecordDecodeError:
        raise
    except Exception as exc:  # any shape error of old or foreign data
        raise RecordDecodeError(f"{type(exc).__name__}: {exc}") from exc
