"""Timers benchmark: N timers on N conversations, all due within one minute: every one fires, none twice.

`python -m bench.timers [--quick|--full] [--json PATH]`. Each run is a fresh process with a fresh `durable`
store (temp dir, `AFACTORS_BENCH_DIR`) and a host without channels: it schedules N one-shot timers through
`host.timers.schedule_many` (1,000 per commit, every one on its own conversation, so nothing is active) with
due times spread evenly over a spread of seconds (60 full, 20 quick) starting a lead later (time enough to
schedule them all), then waits until every timer's turn has committed. The target notes when each timer turn
starts; lag = start - due time.

Metrics: `timers.fired` and `timers.duplicates` (must be N and 0), `timers.lag_p50_ms`, `timers.lag_p99_ms`,
`timers.lag_max_ms`, `timers.schedule_per_s`, `timers.rss_mb.empty` (host up, nothing pending),
`timers.rss_mb.pending` (all N pending), `timers.rss_mb.peak` (while firing), `timers.disk_mb` (data.mdb).
Quick: N = 10,000; full: N = 100,000 (the issue's figure). Median of `MIN_RUNS` runs.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import trio

import afactors
from afactors.model import ConversationKey, TurnContext, Update, new_timer
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress

CHUNK = 1000
SCHEDULE_RATE = 3000
"""Timers/s assumed for scheduling when choosing the lead (measured: about twice that on 2 cores)."""


class _Recorder:
    """Notes the start time of every timer turn, by timer id."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.seen: Counter[str] = Counter()

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        timer = ctx.timer
        if timer is not None:
            self.lags.append(time.time() - timer.due_at)
            self.seen[timer.id] += 1
        yield Update(delta="ok")


def _rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 2**20)


async def _one(directory: Path, n: int, spread: float) -> dict[str, Any]:
    recorder = _Recorder()
    lead = 5.0 + n / SCHEDULE_RATE
    async with afactors.open_host(recorder, state_dir=directory, port=0) as host:
        rss_empty = _rss_mb()
        started = time.time()
        first_due = started + lead
        for base in range(0, n, CHUNK):
            batch = [
                (
                    ConversationKey("bench", f"sub{i:07d}"),
                    new_timer(now=started, at=first_due + spread * i / n, id=f"t{i}"),
                )
                for i in range(base, min(n, base + CHUNK))
            ]
            await host.timers.schedule_many(batch)
        scheduled = time.time()
        rss_pending = _rss_mb()
        if scheduled > first_due:
            progress(f"timers: scheduling overran the lead by {scheduled - first_due:.1f} s (lags include it)")
        peak = rss_pending
        with trio.fail_after(lead + spread + 600):
            while host.timers.count() or host.store.count("inbox") or len(recorder.lags) < n:
                await trio.sleep(0.2)
                peak = max(peak, _rss_mb())
        await trio.sleep(1.0)  # a second firing of anything would show up now
        disk = (directory / "data" / "data.mdb").stat().st_size / 2**20
        lags = sorted(recorder.lags)
        duplicates = sum(count - 1 for count in recorder.seen.values())
    return {
        "fired": len(recorder.seen),
        "duplicates": duplicates,
        "lag_p50_ms": lags[len(lags) // 2] * 1000,
        "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000,
        "lag_max_ms": lags[-1] * 1000,
        "schedule_per_s": n / (scheduled - started),
        "rss_mb.empty": rss_empty,
        "rss_mb.pending": rss_pending,
        "rss_mb.peak": max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "disk_mb": disk,
    }


def _child(n: int, spread: float) -> None:
    with tempfile.TemporaryDirectory(prefix="afactors-bench-timers-", dir=os.environ.get("AFACTORS_BENCH_DIR")) as d:
        print(json.dumps(trio.run(_one, Path(d), n, spread)), flush=True)


def run(quick: bool) -> Metrics:
    """`MIN_RUNS` runs, each in a fresh process (so RSS is this benchmark's alone)."""
    n, spread = (10_000, 20.0) if quick else (100_000, 60.0)
    samples: dict[str, list[float]] = {}
    for run_no in range(MIN_RUNS):
        out = subprocess.run(
            [sys.executable, "-m", "bench.timers", "--one", str(n), str(spread)],
            stdout=subprocess.PIPE,  # the child's progress lines (stderr) show as they come
            text=True,
            check=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if result["fired"] != n or result["duplicates"]:
            raise AssertionError(f"run {run_no + 1}: {result['fired']} of {n} fired, {result['duplicates']} twice")
        progress(
            f"timers: run {run_no + 1}: {n:,} fired, lag p50 {result['lag_p50_ms']:.0f} ms,"
            f" p99 {result['lag_p99_ms']:.0f} ms, RSS pending {result['rss_mb.pending']:.0f} MB"
        )
        for name, value in result.items():
            samples.setdefault(f"timers.{name}", []).append(float(value))
    metrics = summarize(samples)
    metrics.notes["timers.shape"] = (
        f"{n:,} one-shot timers on {n:,} conversations, due evenly over {spread:.0f} s, durable store, no channel"
    )
    return metrics


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        _child(int(sys.argv[2]), float(sys.argv[3]))
        sys.exit(0)
    sys.exit(bench_main("timers", run))
