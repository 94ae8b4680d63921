"""Several nodes on one PostgreSQL: turns/s and cost per turn with 1, 2 and 3 nodes, the forwarding ratio with and
without HAProxy in front, and PostgreSQL against LMDB on one node.

`python -m bench.cluster [--quick|--full] [--json PATH]`. Every case is a fresh cluster (`afactors.cluster.testing`:
nodes hosting the counting target on a fresh schema of one throwaway PostgreSQL server, fsync on, with
pg_stat_statements) under `CONVERSATIONS` closed-loop conversations (each sends its next turn when the last is
answered). Without a proxy each request goes to the next node in turn (a balancer that knows nothing of
conversations), so most turns land on a node that does not own the conversation and are forwarded; HAProxy
runs the shipped `deploy/haproxy.cfg`. The nodes, PostgreSQL and HAProxy run on `SERVER_CPU`, the load on
`LOAD_CPU`: on this 2-core machine more nodes share one core, so the figures are the cost of a turn and of
forwarding it, not scaling.
Cases are interleaved in every run, rotated between runs.

Metrics, per case (`lmdb_1`: one host on LMDB; `pg_1`: one host on PostgreSQL, not a cluster node; `nodes_N`: N
cluster nodes, clients spread over them; `haproxy_3`: 3 nodes behind HAProxy hashing on the conversation):
`cluster.<case>.turns_per_s`, `.p99_ms`, `.gap_p99_ms` (between two acknowledged turns of one conversation: a turn
stalled for seconds shows here), `.forward_ratio` (turns that ran on another node than the one that answered),
`.host_cpu_us_per_turn` (all nodes' CPU, HAProxy's included), `.pg_cpu_us_per_turn` (PostgreSQL's processes),
`.wal_bytes_per_turn` (`pg_stat_wal`), `.statements_per_turn` and `.statement_us_per_turn` (`pg_stat_statements`:
calls and execution time). Ratios per run: `cluster.forward_ratio.direct` and `cluster.forward_ratio.haproxy` (3
nodes), `cluster.pg_vs_lmdb_cost` (one cluster node: host + PostgreSQL CPU per turn over LMDB's host CPU per turn),
`cluster.pg_vs_lmdb_rate` (turns/s) and `cluster.lease_cost` (one cluster node's CPU per turn, PostgreSQL's included,
over one plain host's on PostgreSQL). A case that cannot start (no cluster support, no HAProxy) is skipped with a note.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from importlib.metadata import version

import attrs
import psycopg
import trio

from afactors.cluster.testing import Cluster, ClusterError, ConversationLoad, percentile, running_cluster, shipped_proxy
from afactors.store.pg_server import PgServer, PgUnavailable, throwaway_server
from bench.common import LOAD_CPU, MIN_RUNS, SERVER_CPU, Metrics, bench_main, pin, summarize
from bench.harness import progress, tree_cpu_seconds

CONVERSATIONS = 64
"""Concurrent conversations, each one turn at a time."""


@attrs.frozen
class Case:
    """One shape: `nodes` cluster nodes on PostgreSQL, HAProxy in front with `proxy`; or one plain host (not a
    cluster node) on PostgreSQL, or on LMDB without `postgresql`."""

    name: str
    nodes: int
    postgresql: bool = True
    cluster: bool = True
    proxy: bool = False


CASES = (
    Case("lmdb_1", 1, postgresql=False, cluster=False),
    Case("pg_1", 1, cluster=False),
    Case("nodes_1", 1),
    Case("nodes_2", 2),
    Case("nodes_3", 3),
    Case("haproxy_3", 3, proxy=True),
)


@attrs.frozen
class Reading:
    """Counters read at one instant: CPU seconds of the nodes (and proxy) and of PostgreSQL, WAL bytes, statements."""

    host_cpu: float
    pg_cpu: float
    wal_bytes: float
    calls: float
    exec_ms: float


def _postmaster(server: PgServer) -> int:
    return int((server.directory / "data" / "postmaster.pid").read_text().split()[0])


def _read(cluster: Cluster, server: PgServer) -> Reading:
    processes = [node.pid for node in cluster.nodes] + ([cluster.proxy.pid] if cluster.proxy else [])
    with psycopg.connect(server.url(), autocommit=True) as conn:
        wal = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
        calls = conn.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0) FROM pg_stat_statements"
            " WHERE query NOT LIKE '%pg_stat_%'"
        ).fetchone()
    assert wal is not None and calls is not None
    return Reading(
        sum(tree_cpu_seconds(pid) for pid in processes),
        tree_cpu_seconds(_postmaster(server)),
        float(wal[0]),
        float(calls[0]),
        float(calls[1]),
    )


async def _drive(cluster: Cluster, server: PgServer, timing: tuple[float, float]) -> dict[str, float]:
    seconds, warmup = timing
    names = {node.url: node.name for node in cluster.nodes}
    load = ConversationLoad(cluster.entries, CONVERSATIONS, timeout=60.0, round_robin=True, names=names)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load.run, stop)
        await trio.sleep(warmup)
        before, start = await trio.to_thread.run_sync(_read, cluster, server), time.time()
        await trio.sleep(seconds)
        after, end = await trio.to_thread.run_sync(_read, cluster, server), time.time()
        stop.set()
    window = [a for a in load.attempts if a.acked and start <= a.ended < end]
    turns = max(len(window), 1)
    failures = sum(1 for a in load.attempts if not a.acked)
    if failures:
        progress(f"cluster: {failures} requests failed: {[a.error for a in load.attempts if not a.acked][:3]}")
    named = [a for a in window if a.answered_by is not None]
    acks: dict[str, list[float]] = defaultdict(list)
    for attempt in window:
        acks[attempt.conversation].append(attempt.ended)
    gaps = [b - a for ended in acks.values() for a, b in itertools.pairwise(sorted(ended))]
    return {
        "turns_per_s": len(window) / (end - start),
        "p99_ms": percentile([(a.ended - a.sent) * 1000 for a in window], 0.99),
        "gap_p99_ms": percentile(gaps, 0.99) * 1000,
        "forward_ratio": sum(a.forwarded for a in named) / max(len(named), 1),
        "host_cpu_us_per_turn": (after.host_cpu - before.host_cpu) * 1e6 / turns,
        "pg_cpu_us_per_turn": (after.pg_cpu - before.pg_cpu) * 1e6 / turns,
        "wal_bytes_per_turn": (after.wal_bytes - before.wal_bytes) / turns,
        "statements_per_turn": (after.calls - before.calls) / turns,
        "statement_us_per_turn": (after.exec_ms - before.exec_ms) * 1000 / turns,
        "failures": float(failures),
    }


def _measure(case: Case, server: PgServer, timing: tuple[float, float]) -> dict[str, float]:
    """One case on a fresh cluster: the nodes (and HAProxy) start on SERVER_CPU, the load runs on LOAD_CPU."""
    store = server.new_store_url() if case.postgresql else ""
    proxy = shipped_proxy if case.proxy else None
    pin(0, SERVER_CPU)  # the processes started from here inherit the CPU, every thread of theirs included
    try:
        with running_cluster(store, case.nodes, cluster=case.cluster, proxy=proxy) as cluster:
            pin(0, LOAD_CPU)
            return trio.run(_drive, cluster, server, timing)
    finally:
        pin(0, LOAD_CPU)


def _ratios(results: dict[str, dict[str, float]], samples: dict[str, list[float]]) -> None:
    """The side-by-side ratios of one run, into `samples`."""
    if "nodes_3" in results:
        samples["cluster.forward_ratio.direct"].append(results["nodes_3"]["forward_ratio"])
    if "haproxy_3" in results:
        samples["cluster.forward_ratio.haproxy"].append(results["haproxy_3"]["forward_ratio"])
    if "lmdb_1" in results and "nodes_1" in results:
        pg, lmdb = results["nodes_1"], results["lmdb_1"]
        cost = (pg["host_cpu_us_per_turn"] + pg["pg_cpu_us_per_turn"]) / lmdb["host_cpu_us_per_turn"]
        samples["cluster.pg_vs_lmdb_cost"].append(cost)
        samples["cluster.pg_vs_lmdb_rate"].append(pg["turns_per_s"] / lmdb["turns_per_s"])
    if "pg_1" in results and "nodes_1" in results:
        node, plain = results["nodes_1"], results["pg_1"]
        total = node["host_cpu_us_per_turn"] + node["pg_cpu_us_per_turn"]
        samples["cluster.lease_cost"].append(total / (plain["host_cpu_us_per_turn"] + plain["pg_cpu_us_per_turn"]))


def run(quick: bool, cases: Sequence[Case] = CASES) -> Metrics:
    """Median of `MIN_RUNS` runs of every case, interleaved and rotated."""
    timing = (3.0, 1.0) if quick else (10.0, 2.0)
    samples: dict[str, list[float]] = defaultdict(list)
    skipped: dict[str, str] = {}
    settings = {"shared_preload_libraries": "pg_stat_statements"}
    pin(0, SERVER_CPU)
    try:
        with throwaway_server(settings=settings) as server:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            for run_no in range(MIN_RUNS):
                rotation = run_no % len(cases)
                results: dict[str, dict[str, float]] = {}
                for case in [*cases[rotation:], *cases[:rotation]]:
                    if case.name in skipped:
                        continue
                    try:
                        results[case.name] = result = _measure(case, server, timing)
                    except ClusterError as exc:
                        skipped[case.name] = str(exc)
                        progress(f"cluster: {case.name} skipped: {exc}")
                        continue
                    for name, value in result.items():
                        if case.postgresql or not name.startswith(("pg_", "wal_", "statement")):
                            samples[f"cluster.{case.name}.{name}"].append(value)
                    progress(
                        f"cluster: run {run_no + 1} {case.name:10} {result['turns_per_s']:7,.0f} turns/s"
                        f"  gap p99 {result['gap_p99_ms']:6,.0f} ms  forwarded {result['forward_ratio']:.2f}"
                        f"  host {result['host_cpu_us_per_turn']:6,.0f} µs"
                        f"  pg {result['pg_cpu_us_per_turn']:5,.0f} µs  wal {result['wal_bytes_per_turn']:6,.0f} B"
                    )
                _ratios(results, samples)
            server_version = (server.directory / "data" / "PG_VERSION").read_text().strip()
    except PgUnavailable as exc:
        progress(f"cluster: skipped: {exc}")
        return Metrics()
    finally:
        pin(0, LOAD_CPU)
    metrics = summarize(samples)
    for name in list(metrics):
        if name.endswith(".failures"):
            metrics[name] = sum(samples[name])
            metrics.ranges.pop(name, None)
    metrics.notes.update({f"cluster.{name}.skipped": reason for name, reason in skipped.items()})
    metrics.notes["cluster.versions"] = (
        f"PostgreSQL {server_version}, psycopg {version('psycopg')}, HAProxy {_haproxy_version()}"
    )
    metrics.notes["cluster.load"] = f"{CONVERSATIONS} closed-loop conversations, {timing[0]:g} s after {timing[1]:g} s"
    return metrics


def _haproxy_version() -> str:
    try:
        out = subprocess.run(["/usr/sbin/haproxy", "-v"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "absent"
    return out.stdout.split()[2] if out.stdout.count(" ") > 2 else "unknown"


if __name__ == "__main__":
    sys.exit(bench_main("cluster", run))
