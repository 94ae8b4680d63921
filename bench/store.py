"""Store benchmark: commits/s and commit latency per durability, one commit per transaction vs group commit.

`python -m bench.store [--quick|--full] [--json PATH]`. Each run opens a fresh store in a temp directory on disk
(`AFACTORS_BENCH_DIR`, default the system temp dir; the notes name its filesystem) and lets N committer tasks
commit in a loop; each commit is one turn's writes (the conversation's snapshot and a new turn record) and waits
until the store acknowledges it. `single` is a `durable` store with `max_batch=1` (the same code path, one commit
per LMDB transaction), `group` a `durable` store with the default (everything queued goes into one transaction);
`fast_single` and `fast_group` the same with `durability="fast"` (acknowledged from the page cache, flushed by the
store's flusher every `flush_interval`). The modes and committer counts are interleaved inside every run so the
machine's drift spreads over all of them. Runs in this process (durable's flushes run in a worker thread), so
nothing is pinned.

Metrics: `store.commits_per_s.<mode>.<committers>`, `store.commit_p50_ms...`, `store.commit_p99_ms...`,
`store.batch_mean.<group|fast_group>.<committers>` (commits per transaction), `store.group_speedup.200` (durable
group over single at 200 committers, per run), `store.fast_over_durable.<single|group>.<committers>` (per run),
`store.flushes_per_s.<fast_single|fast_group>.<committers>` (`fast`'s flushes: 1 / `flush_interval` while its
flusher keeps up, more when the writer had to flush first) and `store.gets_per_s` (inline point reads of a
10k-record kind, decoded). Durable commits are bound by the disk's flush time: on a shared machine read the group
rates next to `store.commits_per_s.single.1`, which is one flush pair per commit, and next to the floor
`store.flush_floor_p50_ms.<durable|fast>`: the median time of a bare LMDB write transaction of the same size, with
the store's flags for that setting and nothing else (no trio, no encoding) — what one commit at one client cannot
go below on this disk (`fast`: no flush in it at all).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

import lmdb
import trio

from afactors.model import Message
from afactors.store import DedupRecord, Durability, Expect, Lease, Put, Snapshot, Store, TurnRecord
from bench.common import MIN_RUNS, Metrics, bench_main, summarize, turn_text
from bench.harness import progress

COMMITTERS = (1, 10, 200)
MODES: dict[str, tuple[int, Durability]] = {  # mode -> (max_batch, durability)
    "single": (1, "durable"),
    "group": (4096, "durable"),
    "fast_single": (1, "fast"),
    "fast_group": (4096, "fast"),
}


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="afactors-bench-store-", dir=os.environ.get("AFACTORS_BENCH_DIR")) as d:
        yield Path(d)


def _filesystem(path: Path) -> str:
    """`fstype (device)` of the mount holding `path`, from /proc/mounts."""
    best = ("", "unknown", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, fstype, *_ = line.split()
            if str(path.resolve()).startswith(mount) and len(mount) >= len(best[0]):
                best = (mount, fstype, device)
    except OSError:
        pass
    return f"{best[1]} ({best[2]} on {best[0] or '?'})"


def _turn_commit(committer: int, n: int) -> list[Put]:
    now = time.time()
    turn = TurnRecord(
        seq=n,
        turn_id=f"turn-{committer}-{n}",
        input=(Message("user", "hello"),),
        output=(Message("assistant", turn_text(n)),),
        created_at=now,
        completed_at=now,
    )
    return [
        Put("snapshots", f"bench/{committer}", Snapshot(seq=n, head=turn.turn_id, state={"n": n}, updated_at=now)),
        Put("turns", f"bench/{committer}/{n:08}", turn),
    ]


async def commit_load(
    location: Path | str,
    max_batch: int,
    committers: int,
    seconds: float,
    warmup: float,
    durability: Durability = "durable",
    server_cpu: Callable[[], float] | None = None,
    fenced: bool = False,
) -> dict[str, float]:
    """Commits/s, p50/p99 latency (ms), commits per transaction, CPU µs per commit (this process; and the store
    server's, given a clock of its CPU seconds) and LMDB `fast`'s flushes/s over `seconds` after `warmup`, on the
    store at `location`.
    `fenced` (PostgreSQL): open the store as a cluster node and make each commit expect its conversation's lease,
    as a cluster node's turns do."""
    latencies: list[float] = []  # of the commits that finished inside the window
    window: dict[str, float] = {}
    options = {"node": "bench"} if fenced else {}
    async with Store.open(location, durability=durability, max_batch=max_batch, **options) as store:
        leases = [[Expect("leases", f"bench/{c}", Lease("bench", 1))] if fenced else [] for c in range(committers)]
        if fenced:
            await store.commit([Put("leases", f"bench/{c}", Lease("bench", 1)) for c in range(committers)])
        begin = time.perf_counter() + warmup
        end = begin + seconds

        async def committer(c: int) -> None:
            n = 0
            while (started := time.perf_counter()) < end:
                n += 1
                await store.commit(_turn_commit(c, n), expect=leases[c])
                finished = time.perf_counter()
                if begin <= finished <= end:
                    latencies.append(finished - started)

        def clocks() -> tuple[float, float, float, float]:
            stats = store.stats
            return stats.transactions, time.process_time(), server_cpu() if server_cpu else 0.0, stats.flushes

        async def sample_stats() -> None:
            await trio.sleep_until(trio.current_time() + warmup)
            before = clocks()
            await trio.sleep_until(trio.current_time() + seconds)
            after = clocks()
            for n, name in enumerate(("transactions", "cpu", "server_cpu", "flushes")):
                window[name] = after[n] - before[n]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_stats)
            for c in range(committers):
                nursery.start_soon(committer, c)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else [math.nan] * 99
    commits = max(len(latencies), 1)
    return {
        "commits_per_s": len(latencies) / seconds,
        "p50_ms": quantiles[49] * 1e3,
        "p99_ms": quantiles[98] * 1e3,
        "batch_mean": len(latencies) / max(window["transactions"], 1),
        "cpu_us_per_commit": window["cpu"] * 1e6 / commits,
        "server_cpu_us_per_commit": window["server_cpu"] * 1e6 / commits,
        "flushes_per_s": window["flushes"] / seconds,
    }


def flush_floor(location: Path, durability: Durability, commits: int) -> float:
    """The p50 in ms of `commits` bare LMDB write transactions, each writing what one turn's commit writes, with
    the flags the store uses for `durability` (`sync` and `metasync` for durable, neither for fast)."""
    durable = durability == "durable"
    env = lmdb.open(str(location), map_size=64 << 20, max_dbs=2, sync=durable, metasync=durable)
    db = env.open_db(b"floor")
    latencies = []
    try:
        for n in range(commits):
            started = time.perf_counter()
            with env.begin(write=True) as txn:
                txn.put(b"snapshot", b"s" * 150, db=db)
                txn.put(b"turn/%08d" % n, b"t" * 400, db=db)
            latencies.append(time.perf_counter() - started)
    finally:
        env.close()
    return statistics.median(latencies) * 1e3


async def get_rate(location: Path | str, reads: int) -> float:
    """Point reads per second (decoded) of a 10k-record kind of the store at `location`."""
    async with Store.open(location, durability="unsafe") as store:
        await store.commit([Put("dedup", f"conv/{i:06}", DedupRecord(f"turn-{i}", i)) for i in range(10_000)])
        keys = [f"conv/{(i * 7919) % 10_000:06}" for i in range(reads)]
        started = time.perf_counter()
        for key in keys:
            store.get("dedup", key)
        return reads / (time.perf_counter() - started)


def run(quick: bool) -> Metrics:
    """Median of `MIN_RUNS` runs of every (mode, committers) pair, interleaved."""
    seconds, warmup = (1.0, 0.3) if quick else (4.0, 1.0)
    samples: dict[str, list[float]] = defaultdict(list)
    with scratch() as probe:
        filesystem = _filesystem(probe)
    for run_no in range(MIN_RUNS):
        pairs = [(mode, n) for n in COMMITTERS for mode in MODES]
        pairs = pairs[run_no % len(pairs) :] + pairs[: run_no % len(pairs)]  # rotate the order per run
        per_run: dict[tuple[str, int], float] = {}
        for mode, committers in pairs:
            max_batch, durability = MODES[mode]
            with scratch() as directory:
                result = trio.run(commit_load, directory, max_batch, committers, seconds, warmup, durability)
            per_run[mode, committers] = result["commits_per_s"]
            samples[f"store.commits_per_s.{mode}.{committers}"].append(result["commits_per_s"])
            samples[f"store.commit_p50_ms.{mode}.{committers}"].append(result["p50_ms"])
            samples[f"store.commit_p99_ms.{mode}.{committers}"].append(result["p99_ms"])
            if max_batch > 1:
                samples[f"store.batch_mean.{mode}.{committers}"].append(result["batch_mean"])
            if durability == "fast":
                samples[f"store.flushes_per_s.{mode}.{committers}"].append(result["flushes_per_s"])
            rate = result["commits_per_s"]
            progress(f"store: run {run_no + 1} {mode:6} x{committers:<3} {rate:9,.0f} commits/s")
        samples["store.group_speedup.200"].append(per_run["group", 200] / per_run["single", 200])
        for mode in ("single", "group"):
            for committers in COMMITTERS:
                ratio = per_run[f"fast_{mode}", committers] / per_run[mode, committers]
                samples[f"store.fast_over_durable.{mode}.{committers}"].append(ratio)
        for durability in ("durable", "fast"):
            with scratch() as directory:
                floor = flush_floor(directory, durability, 100 if quick else 400)
            samples[f"store.flush_floor_p50_ms.{durability}"].append(floor)
            progress(f"store: run {run_no + 1} flush floor ({durability}) p50 {floor:.3f} ms")
        with scratch() as directory:
            samples["store.gets_per_s"].append(trio.run(get_rate, directory, 100_000 if quick else 1_000_000))
    metrics = summarize(samples)
    metrics.notes.update(
        {
            "store.filesystem": filesystem,
            "store.versions": (
                f"py-lmdb {lmdb.__version__}, LMDB {'.'.join(map(str, lmdb.version()))}, trio {version('trio')}"
            ),
            "store.commit": "2 puts (snapshot + turn record); single = max_batch 1; fast_* = durability fast",
        }
    )
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("store", run))
