"""What purging stale lease rows costs the retention leader of a cluster, on PostgreSQL.

`python -m bench.lease_purge [--quick|--full] [--json PATH]`. A fresh schema of one throwaway PostgreSQL server
(fsync on, loopback), `durable`, opened as cluster node "bench" (registered, heartbeating): N lease rows, half free
(passivated conversations) and half held by the node, then `purge_leases` (pages of 200, as retention does) deletes
the free half, and a second pass finds nothing to delete (what every later sweep costs while nothing is passivated).
N is 20,000 (`--quick`) or 100,000 (`--full`); 3 runs.

Metrics: `lease_purge.deleted_per_s` (rows deleted per second of the first pass), `lease_purge.scan_s_per_100k`
(seconds of a pass that deletes nothing, per 100,000 rows read). Without PostgreSQL binaries it measures nothing.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict

import trio

from afactors.cluster import FREE, open_node, purge_leases
from afactors.store import Lease, Put, Store
from afactors.store.pg_server import PgUnavailable, throwaway_server
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress

NODE = "bench"


async def one_run(url: str, rows: int) -> tuple[float, float]:
    """(seconds of the purge that deletes the free half, seconds of a pass that deletes nothing)."""
    async with Store.open(url, node=NODE) as store, open_node(store, NODE, "http://127.0.0.1:9") as node:
        for start in range(0, rows, 1000):
            await store.commit([
                Put("leases", f"t/c{n:08d}", Lease(FREE if n % 2 else NODE, 3)) for n in range(start, start + 1000)
            ])  # fmt: skip
        began = time.perf_counter()
        deleted = await purge_leases(store, node.registry)
        first = time.perf_counter() - began
        assert deleted == rows // 2, deleted
        began = time.perf_counter()
        assert await purge_leases(store, node.registry) == 0
        return first, time.perf_counter() - began


def run(quick: bool) -> Metrics:
    rows = 20_000 if quick else 100_000
    samples: dict[str, list[float]] = defaultdict(list)
    try:
        with throwaway_server() as server:
            for run_no in range(MIN_RUNS):
                first, again = trio.run(one_run, server.new_store_url(), rows)
                samples["lease_purge.deleted_per_s"].append(rows / 2 / first)
                samples["lease_purge.scan_s_per_100k"].append(again * 100_000 / (rows / 2))
                progress(f"lease_purge: run {run_no + 1}: {rows // 2:,} deleted in {first:.2f} s, "
                         f"a pass over {rows // 2:,} held rows {again:.2f} s")  # fmt: skip
    except PgUnavailable as exc:
        progress(f"lease_purge: skipped: {exc}")
        return Metrics()
    return summarize(samples)


if __name__ == "__main__":
    sys.exit(bench_main("lease_purge", run))
