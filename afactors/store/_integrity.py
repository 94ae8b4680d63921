"""Checks that keep a damaged or full store from taking the process down: the commit marker, the data file's
size against the pages LMDB says are in use, and free disk space.

The marker (`data/afactors.marker`, JSON) records the id of a transaction known to be on disk, the page size
and the pages in use then. It is rewritten (atomically, after a flush) when the store opens, at most every
`MARKER_INTERVAL` seconds while it commits, and when it closes. At open, a data file that is missing, empty,
shorter than its pages, or older than the marker is refused with `StoreDamaged` instead of starting as an
empty store or dying of SIGBUS on the first read of a missing page.

While a store that acknowledges commits before flushing them (`fast`, `unsafe`) is open, the marker also holds
the boot id of the running kernel (`open_boot`); a clean close clears it. Found at open with another boot id,
it means the OS went down while unflushed pages were in its cache (`os_went_down`): the pages may have reached
the disk out of order, so the store is read whole before it serves.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import attrs
import lmdb
import orjson

MARKER_FILE = "afactors.marker"
DATA_FILE = "data.mdb"
MARKER_INTERVAL = 5.0
"""Seconds between marker rewrites while the store commits (each costs a flush)."""

MIN_FREE_BYTES = 8 << 20
"""Default free space below which the store refuses writes (`StoreFull`); writes resume at twice that."""


class StoreError(Exception):
    """Base class of store failures."""


class StoreFull(StoreError):
    """The disk holding the store is (nearly) full: writes are refused until space returns; reads work."""


class StoreDamaged(StoreError):
    """The store's data file is damaged (truncated, emptied, replaced, or a page that no longer reads)."""


@attrs.frozen
class Marker:
    """A transaction known to be on disk, with the page size and the pages in use after it."""

    txnid: int
    psize: int
    pages: int
    open_boot: str | None = None
    """The boot id of the system a `fast`/`unsafe` store is open on (None: closed cleanly, or `durable`)."""


BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """The running kernel's boot id (new at every boot), or "" where the OS does not tell it."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return ""


def os_went_down(marker: Marker | None) -> bool:
    """Whether the OS may have gone down while a store with unflushed commits was open: the marker still names
    the boot it was opened on (it was not closed cleanly) and that is not this boot (or the boot is unknown)."""
    if marker is None or marker.open_boot is None:
        return False
    current = boot_id()
    return not current or marker.open_boot != current


def read_marker(data_dir: Path) -> Marker | None:
    try:
        raw: dict[str, Any] = orjson.loads((data_dir / MARKER_FILE).read_bytes())
        open_boot = raw.get("open_boot")
        if open_boot is not None and not isinstance(open_boot, str):
            raise TypeError(f"open_boot is {type(open_boot).__name__}, not a string")
        return Marker(int(raw["txnid"]), int(raw["psize"]), int(raw["pages"]), open_boot)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreDamaged(
            f"the store marker {data_dir / MARKER_FILE} is unreadable ({exc}); run "
            "`python -m afactors store verify` to check the data file"
        ) from None


def write_marker(data_dir: Path, marker: Marker) -> None:
    """Replace the marker atomically and durably (call only after the data it names is flushed)."""
    path = data_dir / MARKER_FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as file:
        file.write(orjson.dumps(attrs.asdict(marker)))
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def current_marker(env: lmdb.Environment, open_boot: str | None = None) -> Marker:
    """The marker of `env`'s last committed transaction (write it only once that is flushed)."""
    info, stat = env.info(), env.stat()
    return Marker(txnid=info["last_txnid"], psize=stat["psize"], pages=info["last_pgno"] + 1, open_boot=open_boot)


def _salvage_hint(data_dir: Path) -> str:
    state = data_dir.parent
    return (
        f"; the file is kept as it is. Run `python -m afactors store salvage --state-dir {state} --to NEW_DIR` to"
        " copy every readable record to a new state directory, or restore a backup"
    )


def check_before_open(data_dir: Path) -> Marker | None:
    """Refuse a data file that is missing, empty or shorter than two pages while a marker says it had data."""
    marker = read_marker(data_dir)
    if marker is None:
        return None
    data = data_dir / DATA_FILE
    try:
        size = data.stat().st_size
    except FileNotFoundError:
        raise StoreDamaged(
            f"the data file {data} is missing, but transaction {marker.txnid} was committed" + _salvage_hint(data_dir)
        ) from None
    if size == 0:
        raise StoreDamaged(
            f"the data file {data} is empty, but transaction {marker.txnid} was committed" + _salvage_hint(data_dir)
        )
    if size < 2 * marker.psize:
        raise StoreDamaged(f"the data file {data} is truncated to {size} bytes" + _salvage_hint(data_dir))
    return marker


def check_after_open(data_dir: Path, env: lmdb.Environment, marker: Marker | None) -> None:
    """Refuse a data file shorter than the pages in use (reading one would SIGBUS) or older than the marker.

    Reads only the two meta pages (already checked to exist) and the file's size.
    """
    now = current_marker(env)
    data = data_dir / DATA_FILE
    size = data.stat().st_size
    if size < now.pages * now.psize:
        raise StoreDamaged(
            f"the data file {data} is truncated: {size} bytes, but its {now.pages} pages in use need "
            f"{now.pages * now.psize}" + _salvage_hint(data_dir)
        )
    if marker is not None and now.txnid < marker.txnid:
        raise StoreDamaged(
            f"the data file {data} is older than the store: it ends at transaction {now.txnid}, but "
            f"transaction {marker.txnid} was committed" + _salvage_hint(data_dir)
        )


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


CORRUPTION_ERRORS: tuple[type[BaseException], ...] = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.BadTxnError,
    lmdb.BadValsizeError,
    lmdb.InvalidError,
    lmdb.PanicError,
    lmdb.BadDbiError,
    lmdb.IncompatibleError,
)
"""LMDB errors that mean the data file is damaged."""


def is_disk_full(exc: BaseException, data_dir: Path, min_free: int) -> bool:
    """Whether a failed commit failed for want of disk space (LMDB reports a short write as EIO)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if not isinstance(exc, lmdb.Error) or isinstance(exc, (lmdb.MapFullError, *CORRUPTION_ERRORS)):
        return False
    try:
        return free_bytes(data_dir) < min_free
    except OSError:
        return False
