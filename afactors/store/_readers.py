"""Reading every record of an LMDB environment in child processes (`page_reader`), surviving LMDB's aborts.

A kind whose reader stopped early (an error, or the reader died on a damaged page) is read again backwards
from its end down to the last key read forwards, so one damaged region loses only the records stored in it.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import sys
from typing import Any

import attrs
import orjson

from afactors.store import _page_reader as page_reader
from afactors.store._records import KINDS


@attrs.frozen
class KindReport:
    """One record kind: entries LMDB counted (None if unknown), records read, and the first error met."""

    kind: str
    counted: int | None
    read: int
    error: str | None = None
    undecodable: int = 0  # records that read but no longer decode (the running store quarantines them)

    @property
    def lost(self) -> int:
        return 0 if self.counted is None else max(0, self.counted - self.read)


Records = list[tuple[bytes, bytes]]


def _parse(stream: bytes) -> list[tuple[Records, dict[str, Any] | None]]:
    """Per kind read, its complete (key, value) frames and its trailer (None for the last if the reader died)."""
    kinds: list[tuple[Records, dict[str, Any] | None]] = []
    records: Records = []
    pos, items = 0, list[bytes]()
    while pos + 4 <= len(stream):
        (size,) = struct.unpack_from(">I", stream, pos)
        pos += 4
        if size == page_reader.END:
            if pos + 4 > len(stream):
                break
            (size,) = struct.unpack_from(">I", stream, pos)
            if pos + 4 + size > len(stream):
                break
            kinds.append((records, orjson.loads(stream[pos + 4 : pos + 4 + size])))
            records, items, pos = [], [], pos + 4 + size
            continue
        if pos + size > len(stream):
            break
        items.append(stream[pos : pos + size])
        pos += size
        if len(items) == 2:
            records.append((items[0], items[1]))
            items = []
    kinds.append((records, None))  # what the reader was reading when it stopped (nothing if it finished)
    return kinds


def _run_reader(
    env_dir: str, direction: str, stop: bytes | None, kinds: list[str]
) -> tuple[list[tuple[Records, dict[str, Any] | None]], str]:
    args = [sys.executable, page_reader.__file__, env_dir, direction, stop.hex() if stop else "-", *kinds]
    proc = subprocess.run(args, capture_output=True, timeout=3600)
    died = "" if proc.returncode == 0 else f"the reader died ({_exit_reason(proc.returncode)})"
    return _parse(proc.stdout), died


def _exit_reason(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"


def read_all(env_dir: str, sinks: dict[str, Records] | None = None) -> list[KindReport]:
    """Read every kind forwards in child processes; a kind whose reader stopped early (an error, or the reader
    died on a damaged page) is read again backwards from its end down to the last key read forwards."""
    reports: list[KindReport] = []
    pending = list(KINDS)
    while pending:
        results, died = _run_reader(env_dir, "forward", None, pending)
        for records, trailer in results:
            if not pending:
                break
            kind = pending.pop(0)
            if sinks is not None:
                sinks[kind] = records
            if trailer is not None and not trailer["error"]:
                reports.append(KindReport(kind, trailer["counted"], len(records)))
                continue
            last = records[-1][0] if records else None
            [(tail, tail_trailer), *_], _ = _run_reader(env_dir, "backward", last, [kind])
            if sinks is not None:
                sinks[kind] = records + tail[::-1]
            counted = (trailer or tail_trailer or {}).get("counted")
            error = (trailer or {}).get("error") or died or "unreadable"
            reports.append(KindReport(kind, counted, len(records) + len(tail), error))
            break  # the reader stopped in this kind: start a new one for the kinds after it
    return reports


def check_readable(env_dir: str) -> str | None:
    """Read every record of an environment in child processes; what is damaged, or None if all of it reads."""
    for report in read_all(env_dir):
        if report.error is not None or report.lost:
            return f"the {report.kind} records do not all read ({report.error or f'{report.lost} missing'})"
    return None
