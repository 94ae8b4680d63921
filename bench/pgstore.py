"""Store backends side by side: LMDB and PostgreSQL, durable and fast, one committer and 200.

`python -m bench.pgstore [--quick|--full] [--json PATH]`. Every load is `bench.store.commit_load` (each commit one
turn's writes: snapshot + turn record, awaited until written) on a fresh store: an LMDB state directory in a temp
dir, or a fresh schema of a throwaway PostgreSQL server (`afactors.store.pg_server`, fsync on, loopback, started
once) whose data directory is on the same filesystem. Backends, durabilities and committer counts are
interleaved in every run, rotated between runs.

Metrics, per `<backend>.<durability>.<committers>`: `pgstore.commits_per_s`, `pgstore.commit_p50_ms`,
`pgstore.batch_mean` (commits per transaction); at 200 committers the per-turn cost in CPU: `pgstore.cpu_us_per_turn`
(this process: encoding, the trio writer, the driver) and `pgstore.server_cpu_us_per_turn` (PostgreSQL's processes);
`pgstore.pg_over_lmdb.<durability>.200` (PostgreSQL commits/s over LMDB's, per run) and `pgstore.gets_per_s.<backend>`
(inline point reads). Without PostgreSQL binaries (or psycopg) it prints why and measures nothing.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psutil
import trio

from afactors.store import Durability
from afactors.store.pg_server import PgServer, PgUnavailable, throwaway_server
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress
from bench.store import commit_load, get_rate, scratch

COMMITTERS = (1, 200)
DURABILITIES: tuple[Durability, ...] = ("durable", "fast")
BACKENDS = ("lmdb", "postgresql")


def _server_cpu(server: PgServer) -> Callable[[], float]:
    """A clock of the CPU seconds the server's processes (postmaster and children) have used so far."""
    postmaster = psutil.Process(int((server.directory / "data" / "postmaster.pid").read_text().split()[0]))

    def seconds() -> float:
        total = 0.0
        for proc in [postmaster, *postmaster.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    return seconds


def _load(
    server: PgServer, backend: str, durability: Durability, committers: int, timing: tuple[float, float]
) -> dict[str, float]:
    seconds, warmup = timing
    if backend == "lmdb":
        with scratch() as directory:
            return trio.run(commit_load, directory, 4096, committers, seconds, warmup, durability)
    return trio.run(
        commit_load, server.new_store_url(), 4096, committers, seconds, warmup, durability, _server_cpu(server)
    )


def run(quick: bool) -> Metrics:
    """Median of `MIN_RUNS` runs of every (backend, durability, committers), interleaved."""
    timing = (1.0, 0.3) if quick else (4.0, 1.0)
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        with throwaway_server() as server:
            for run_no in range(MIN_RUNS):
                cases = [(b, d, n) for n in COMMITTERS for d in DURABILITIES for b in BACKENDS]
                cases = cases[run_no % len(cases) :] + cases[: run_no % len(cases)]
                rates: dict[tuple[str, str, int], float] = {}
                for backend, durability, committers in cases:
                    result = _load(server, backend, durability, committers, timing)
                    name = f"{backend}.{durability}.{committers}"
                    rates[backend, durability, committers] = result["commits_per_s"]
                    samples[f"pgstore.commits_per_s.{name}"].append(result["commits_per_s"])
                    samples[f"pgstore.commit_p50_ms.{name}"].append(result["p50_ms"])
                    samples[f"pgstore.batch_mean.{name}"].append(result["batch_mean"])
                    if committers == 200:
                        samples[f"pgstore.cpu_us_per_turn.{name}"].append(result["cpu_us_per_commit"])
                        if backend == "postgresql":
                            samples[f"pgstore.server_cpu_us_per_turn.{name}"].append(result["server_cpu_us_per_commit"])
                    progress(f"pgstore: run {run_no + 1} {name:24} {result['commits_per_s']:9,.0f} commits/s")
                for durability in DURABILITIES:
                    ratio = rates["postgresql", durability, 200] / rates["lmdb", durability, 200]
                    samples[f"pgstore.pg_over_lmdb.{durability}.200"].append(ratio)
                reads = 20_000 if quick else 200_000
                with scratch() as directory:
                    samples["pgstore.gets_per_s.lmdb"].append(trio.run(get_rate, directory, reads))
                samples["pgstore.gets_per_s.postgresql"].append(trio.run(get_rate, server.new_store_url(), reads))
            server_version = (server.directory / "data" / "PG_VERSION").read_text().strip()
    except PgUnavailable as exc:
        progress(f"pgstore: skipped: {exc}")
        return Metrics()
    metrics = summarize(samples)
    metrics.notes.update(
        {
            "pgstore.versions": f"PostgreSQL {server_version}, psycopg {version('psycopg')}, trio {version('trio')}",
            "pgstore.commit": "2 puts (snapshot + turn record) per turn; max_batch 4096; server on loopback, fsync on",
            "pgstore.data": str(Path(server.directory)),
        }
    )
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("pgstore", run))
