"""`verify` and `salvage`: read every record a damaged store still holds, and copy them to a new state directory.

Both work on a private copy of `data.mdb` (the original is never written), padded with zero pages to the size
its meta page claims, so a truncated file reads as damaged pages (an error) instead of killing the reader with
SIGBUS. Each record kind is read in a child process (LMDB aborts the process on some damaged pages) forwards
until the first damaged page, then in another backwards from its last key down to the same point, so one
damaged region loses only the records stored in it. LMDB counts each kind's entries
in the database directory; `lost` is that count minus what could be read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import lmdb

from afactors.store._codec import RecordDecodeError, decode_value
from afactors.store._integrity import DATA_FILE, StoreError, current_marker, write_marker
from afactors.store._lmdb_store import DATA_DIR, _lock_state_dir
from afactors.store._readers import KindReport, Records, read_all
from afactors.store._records import KINDS

_META_BYTES = 4096 * 2


@attrs.frozen
class StoreReport:
    """What `verify` or `salvage` found: one line per kind, plus a file-level problem if any."""

    kinds: tuple[KindReport, ...]
    problem: str | None = None

    @property
    def damaged(self) -> bool:
        return self.problem is not None or any(k.error is not None or k.lost or k.undecodable for k in self.kinds)

    @property
    def read(self) -> int:
        return sum(k.read for k in self.kinds)

    @property
    def lost(self) -> int:
        return sum(k.lost for k in self.kinds)

    def lines(self) -> list[str]:
        out = [] if self.problem is None else [f"problem: {self.problem}"]
        for k in self.kinds:
            counted = "?" if k.counted is None else str(k.counted)
            line = f"{k.kind:<13} read {k.read:>8} of {counted:>8}  lost {k.lost}  undecodable {k.undecodable}"
            out.append(line if k.error is None else f"{line}  ({k.error})")
        out.append(f"total         read {self.read}, lost {self.lost}{' (at least)' if self.problem else ''}")
        return out


@contextmanager
def _readable_copy(state_dir: Path) -> Iterator[tuple[str, str | None]]:
    """A private copy of the state directory's data file, padded to the pages its meta page claims."""
    source = state_dir / DATA_DIR / DATA_FILE
    if not source.is_file():
        raise StoreError(f"there is no data file {source}")
    with tempfile.TemporaryDirectory(prefix="afactors-salvage-") as tmp:
        copy = Path(tmp) / DATA_FILE
        shutil.copyfile(source, copy)
        size = copy.stat().st_size
        if size < _META_BYTES:
            raise StoreError(f"the data file {source} has {size} bytes: not even its header survived")
        try:
            env = lmdb.open(tmp, readonly=True, lock=False, max_dbs=len(KINDS) + 2)
        except lmdb.Error as exc:
            raise StoreError(f"the data file {source} does not open as an LMDB environment: {exc}") from None
        marker = current_marker(env)
        env.close()
        problem = None
        needed = marker.pages * marker.psize
        if size < needed:
            problem = f"{source} is truncated: {size} of {needed} bytes"
            os.truncate(copy, needed)  # the missing pages read as zeros: damaged, not SIGBUS
        yield tmp, problem


def _decoded(report: KindReport, records: Records) -> KindReport:
    """The report with the count of its records that no longer decode."""
    bad = 0
    for key, value in records:
        try:
            decode_value(value, KINDS[report.kind], key)
        except RecordDecodeError:
            bad += 1
    return attrs.evolve(report, undecodable=bad)


def _put(txn: lmdb.Transaction, key: bytes, value: bytes) -> bool:
    """Write one salvaged record; False for garbage a damaged page gave (a size LMDB refuses)."""
    try:
        return bool(txn.put(key, value, overwrite=False))
    except lmdb.BadValsizeError:
        return False


def verify(state_dir: str | os.PathLike[str]) -> StoreReport:
    """Read every record of a stopped store (its lock is taken); nothing is written."""
    state = Path(state_dir)
    lock, _ = _lock_state_dir(state)
    try:
        with _readable_copy(state) as (env_dir, problem):
            sinks: dict[str, Records] = {}
            reports = read_all(env_dir, sinks)
            return StoreReport(tuple(_decoded(r, sinks.get(r.kind, [])) for r in reports), problem)
    finally:
        os.close(lock)


def salvage(state_dir: str | os.PathLike[str], target_dir: str | os.PathLike[str]) -> StoreReport:
    """Copy every readable record of a stopped store into a new state directory `target_dir` (must not exist)."""
    state, target = Path(state_dir), Path(target_dir)
    if target.exists():
        raise StoreError(f"the salvage target {target} exists already; name a new directory")
    lock, _ = _lock_state_dir(state)
    try:
        with _readable_copy(state) as (env_dir, problem):
            (target / DATA_DIR).mkdir(parents=True)
            size = (Path(env_dir) / DATA_FILE).stat().st_size
            out = lmdb.open(str(target / DATA_DIR), map_size=max(size * 2, 1 << 24), max_dbs=len(KINDS) + 2)
            sinks: dict[str, Records] = {}
            reports = read_all(env_dir, sinks)
            try:
                for n, report in enumerate(reports):
                    db = out.open_db(report.kind.encode())
                    with out.begin(write=True, db=db) as txn:
                        written = sum(_put(txn, key, value) for key, value in sinks.get(report.kind, ()))
                    reports[n] = attrs.evolve(report, read=written)
                out.sync(True)
                write_marker(target / DATA_DIR, current_marker(out))
            finally:
                out.close()
            return StoreReport(tuple(reports), problem)
    finally:
        os.close(lock)
