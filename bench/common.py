"""The convention every benchmark follows, and the helpers it uses (stdlib only).

A benchmark module `bench/<name>.py`:

* exposes `run(quick: bool) -> dict[str, float]`: flat dotted metric names (`"<name>.<what>"`) mapped to
  numbers. Return a `Metrics` (a dict subclass) to also carry min-max ranges (`summarize` builds one from
  repeated runs) and text notes such as the versions of what was measured;
* is runnable as `python -m bench.<name> [--quick|--full] [--json PATH]` through `bench_main`, which prints
  the table and writes `{"machine": {...}, "metrics": {...}}` (plus `"ranges"`/`"notes"` when present);
* quotes the median of at least 3 runs for every timing (`summarize`), so min-max shows the noise;
* runs servers and load generators as separate processes pinned with `pin` (server on `SERVER_CPU`,
  load on `LOAD_CPU`) when the machine has two CPUs.

`python -m bench` imports each known module that exists, runs it, writes `bench/results/<name>.json`,
and prints one merged table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
SERVER_CPU = 0
LOAD_CPU = 1
MIN_RUNS = 3

_TURN_RE = re.compile(r"\bturn (\d+)\b")


class Metrics(dict[str, float]):
    """Metric name -> median; `ranges` holds (min, max) per name, `notes` holds text facts."""

    def __init__(
        self,
        values: Mapping[str, float] | None = None,
        *,
        ranges: Mapping[str, tuple[float, float]] | None = None,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(values or {})
        self.ranges: dict[str, tuple[float, float]] = dict(ranges or {})
        self.notes: dict[str, str] = dict(notes or {})

    def merge(self, other: Mapping[str, float]) -> None:
        """Add another benchmark's metrics (and its ranges and notes) to this one."""
        self.update(other)
        if isinstance(other, Metrics):
            self.ranges.update(other.ranges)
            self.notes.update(other.notes)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    return float(statistics.median(values))


def summarize(samples: Mapping[str, Sequence[float]]) -> Metrics:
    """Medians of repeated runs, with each metric's min-max kept in `ranges`."""
    out = Metrics()
    for name, values in samples.items():
        if not values:
            continue
        out[name] = median(values)
        if len(values) > 1:
            out.ranges[name] = (float(min(values)), float(max(values)))
    return out


def turn_text(turn: int) -> str:
    """The reply every benchmark echo (target, stub model, bare route) gives on user turn `turn`."""
    return f"turn {turn}"


def parse_turn(text: str) -> int | None:
    """The turn number in a `turn_text` reply, or None."""
    found = _TURN_RE.search(text)
    return int(found.group(1)) if found else None


def pin(pid: int, cpu: int) -> bool:
    """Pin process `pid` (0 = this one) to `cpu` when the machine has it; True if pinned."""
    if not hasattr(os, "sched_setaffinity"):
        return False
    available = os.sched_getaffinity(0)
    if len(available) < 2 or cpu not in available:
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "git_commit": _git_commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def result_document(metrics: Mapping[str, float]) -> dict[str, object]:
    """The JSON document a benchmark writes: machine, metrics, and ranges/notes when present."""
    doc: dict[str, object] = {"machine": machine_info(), "metrics": dict(sorted(metrics.items()))}
    if isinstance(metrics, Metrics):
        if metrics.ranges:
            doc["ranges"] = {k: list(v) for k, v in sorted(metrics.ranges.items())}
        if metrics.notes:
            doc["notes"] = dict(sorted(metrics.notes.items()))
    return doc


def write_json(path: Path, metrics: Mapping[str, float]) -> None:
    """Write `result_document(metrics)` to `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result_document(metrics), indent=2) + "\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def format_table(metrics: Mapping[str, float]) -> str:
    """A plain-text table: metric, median, min-max (when known), then the notes."""
    ranges = metrics.ranges if isinstance(metrics, Metrics) else {}
    rows = [("metric", "median", "min-max")]
    for name in sorted(metrics):
        low_high = ranges.get(name)
        spread = f"{_number(low_high[0])} - {_number(low_high[1])}" if low_high else ""
        rows.append((name, _number(metrics[name]), spread))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, "-" * (sum(widths) + 4))
    if isinstance(metrics, Metrics):
        lines.extend(f"note {key}: {value}" for key, value in sorted(metrics.notes.items()))
    return "\n".join(lines)


def bench_main(name: str, run: Callable[[bool], Mapping[str, float]], argv: Sequence[str] | None = None) -> int:
    """Command line of one benchmark: `[--quick|--full] [--json PATH]`; prints the table."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=(sys.modules["__main__"].__doc__))
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True, help="short runs (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="long runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write {machine, metrics} to PATH")
    args = parser.parse_args(argv)
    metrics = run(args.quick)
    print(format_table(metrics))
    if args.json:
        write_json(args.json, metrics)
    return 0
