"""Record and key encoding for the store: versioned values, hashed long keys.

A stored value is the JSON document `{"v": schema version, "d": record data}`, plus `"k": full key` when the
key was too long to store as is. A key longer than `MAX_KEY_BYTES` is stored as its first `HEAD_BYTES` bytes,
a 0xFF byte (never part of UTF-8, so it cannot clash with a short key) and the SHA-256 of the whole key. The
head keeps prefix scans working: every key that starts with a prefix of up to `HEAD_BYTES` bytes is stored
under a key that starts with the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson

from afactors.model import converter, describe_error
from afactors.store._records import UPGRADES

MAX_KEY_BYTES = 400
"""Keys longer than this (LMDB allows 511) are stored under a hash; the full key is kept in the value."""

HEAD_BYTES = MAX_KEY_BYTES - 1 - 32
"""How much of a long key is kept in front of its hash (so a hashed key is `MAX_KEY_BYTES` long)."""

_HASH_MARK = b"\xff"


class RecordDecodeError(ValueError):
    """A stored value that no longer decodes into its record class."""


def stored_key(raw: bytes) -> bytes:
    """The LMDB key for the UTF-8 key `raw`: itself, or head + mark + hash when longer than `MAX_KEY_BYTES`."""
    if len(raw) <= MAX_KEY_BYTES:
        return raw
    return raw[:HEAD_BYTES] + _HASH_MARK + hashlib.sha256(raw).digest()


def encode_key(key: str) -> bytes:
    """The LMDB key for a record key (which must not be empty)."""
    if not key:
        raise ValueError("store keys must not be empty")
    return stored_key(key.encode("utf-8"))


def is_hashed(stored: bytes) -> bool:
    """Whether `stored` is the hashed form of a long key."""
    return len(stored) == MAX_KEY_BYTES and stored[HEAD_BYTES : HEAD_BYTES + 1] == _HASH_MARK


_HOOKS: dict[type, Callable[[Any], Any]] = {}  # each record class's unstructure hook, looked up once


def encode_value(record: Any, key: str, hashed: bool) -> bytes:
    """`{"v": schema, "d": data}` plus `"k": key` when the key was hashed."""
    cls = type(record)
    hook = _HOOKS.get(cls)
    if hook is None:
        hook = _HOOKS[cls] = converter.get_unstructure_hook(cls)
    doc: dict[str, Any] = {"v": cls.SCHEMA, "d": hook(record)}
    if hashed:
        doc["k"] = key
    return orjson.dumps(doc)


def decode_value(raw: bytes, cls: type[Any], stored: bytes) -> tuple[str, Any]:
    """Decode a stored value into `(full key, record)`, upgrading old schema versions on the way."""
    try:
        doc = orjson.loads(raw)
        version, data = doc["v"], doc["d"]
        if is_hashed(stored):
            key = doc["k"]
            if not isinstance(key, str) or stored_key(key.encode("utf-8")) != stored:
                raise RecordDecodeError("the full key kept in the value does not hash to the stored key")
        else:
            key = stored.decode("utf-8")
        if not isinstance(version, int):
            raise RecordDecodeError(f"schema version {version!r} is not an integer")
        while version < cls.SCHEMA:
            upgrade = UPGRADES.get((cls, version))
            if upgrade is None:
                raise RecordDecodeError(f"no upgrade for {cls.__name__} schema version {version}")
            data = upgrade(data)
            version += 1
        if version != cls.SCHEMA:
            raise RecordDecodeError(f"schema version {version} is newer than this code ({cls.SCHEMA})")
        return key, converter.structure(data, cls)
    except RecordDecodeError:
        raise
    except Exception as exc:  # any shape error of old or foreign data
        raise RecordDecodeError(describe_error(exc)) from exc
