"""What fencing costs a turn's commit on PostgreSQL: a cluster node's commit (expecting its conversation's lease,
the lease row locked in the transaction) against a single host's (no condition), one committer and 200.

`python -m bench.fencing [--quick|--full] [--json PATH]`. Every load is `bench.store.commit_load` (each commit one
turn's writes: snapshot + turn record, awaited until written) on a fresh schema of one throwaway PostgreSQL server
(fsync on, loopback), `durable`; `fenced` opens the store as cluster node "bench" and each commit carries
`Expect("leases", <its conversation>, Lease("bench", 1))`, so the writer takes a transaction advisory lock per
expected row, then reads the rows, as a cluster node does. Cases are interleaved, rotated between runs.

Metrics, per `<plain|fenced>.<committers>`: `fencing.commits_per_s`, `fencing.commit_p50_ms`, `fencing.batch_mean`,
`fencing.cpu_us_per_turn` (this process) and `fencing.server_cpu_us_per_turn` (PostgreSQL's); and per run
`fencing.fenced_over_plain.<committers>` (commits/s ratio). Without PostgreSQL binaries it measures nothing.
"""

from __future__ import annotations

import sys
from collections import defaultdict

import trio

from afactors.store.pg_server import PgUnavailable, throwaway_server
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress
from bench.pgstore import _server_cpu
from bench.store import commit_load

COMMITTERS = (1, 200)
MODES = ("plain", "fenced")


def run(quick: bool) -> Metrics:
    """Median of `MIN_RUNS` runs of every (mode, committers), interleaved."""
    seconds, warmup = (2.0, 0.5) if quick else (5.0, 1.0)
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        with throwaway_server() as server:
            for run_no in range(MIN_RUNS):
                cases = [(mode, n) for n in COMMITTERS for mode in MODES]
                cases = cases[run_no % len(cases) :] + cases[: run_no % len(cases)]
                rates: dict[tuple[str, int], float] = {}
                for mode, committers in cases:
                    result = trio.run(
                        commit_load, server.new_store_url(), 4096, committers, seconds, warmup, "durable",
                        _server_cpu(server), mode == "fenced",
                    )  # fmt: skip
                    name = f"{mode}.{committers}"
                    rates[mode, committers] = result["commits_per_s"]
                    samples[f"fencing.commits_per_s.{name}"].append(result["commits_per_s"])
                    samples[f"fencing.commit_p50_ms.{name}"].append(result["p50_ms"])
                    samples[f"fencing.batch_mean.{name}"].append(result["batch_mean"])
                    samples[f"fencing.cpu_us_per_turn.{name}"].append(result["cpu_us_per_commit"])
                    samples[f"fencing.server_cpu_us_per_turn.{name}"].append(result["server_cpu_us_per_commit"])
                    progress(f"fencing: run {run_no + 1} {name:12} {result['commits_per_s']:9,.0f} commits/s"
                             f" p50 {result['p50_ms']:.2f} ms")  # fmt: skip
                for committers in COMMITTERS:
                    ratio = rates["fenced", committers] / rates["plain", committers]
                    samples[f"fencing.fenced_over_plain.{committers}"].append(ratio)
    except PgUnavailable as exc:
        progress(f"fencing: skipped: {exc}")
        return Metrics()
    return summarize(samples)


if __name__ == "__main__":
    sys.exit(bench_main("fencing", run))
