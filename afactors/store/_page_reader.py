"""The child process of `salvage`: streams an LMDB environment's records to stdout as length-prefixed frames.

Run as a script (`python page_reader.py ENV_DIR forward|backward STOP_HEX|- KIND...`), never imported by a
server: it imports nothing of afactors, so it starts fast, and LMDB may abort it on a damaged page without
taking anything else down. Per kind: (key, value) frame pairs, then `END` and a JSON trailer
`{"counted": entries LMDB keeps, "error": the error that stopped the read, or ""}`.
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO

import lmdb
import orjson

END = 0xFFFFFFFF
"""A frame length that marks a kind's trailer."""


def _frame(out: BinaryIO, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)))
    out.write(data)


def _read_child(env_dir: str, direction: str, stop: bytes | None, kinds: list[str]) -> None:
    """In a child process: for each kind, stream its records as frames (key, value, ...), then a trailer with
    the count LMDB keeps and the error met, if any. A damaged page may abort this process: the parent keeps
    what came."""
    out = sys.stdout.buffer
    env = lmdb.open(env_dir, readonly=True, lock=False, max_dbs=64)
    for kind in kinds:
        counted, error = 0, ""
        try:
            db = env.open_db(kind.encode(), create=False)
        except lmdb.NotFoundError:  # this kind was never written
            db = None
        if db is not None:
            with env.begin(db=db) as txn:
                counted = int(txn.stat(db)["entries"])
                cursor = txn.cursor()
                try:
                    positioned = cursor.first() if direction == "forward" else cursor.last()
                    while positioned:
                        key = cursor.key()
                        if stop is not None and key <= stop:
                            break
                        _frame(out, key)
                        _frame(out, cursor.value())
                        positioned = cursor.next() if direction == "forward" else cursor.prev()
                except lmdb.Error as exc:
                    error = str(exc)
        out.write(struct.pack(">I", END))
        _frame(out, orjson.dumps({"counted": counted, "error": error}))
        out.flush()


if __name__ == "__main__":
    _read_child(sys.argv[1], sys.argv[2], None if sys.argv[3] == "-" else bytes.fromhex(sys.argv[3]), sys.argv[4:])
