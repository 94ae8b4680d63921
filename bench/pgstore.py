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
(inline point reads). The driver choice: `pgstore.driver.tx_per_s.<thread|bridge>.<rows>` and `...cpu_us_per_tx...`:
psycopg's sync connection in a worker thread (what `PgStore` does) against its asyncio connection through
trio-asyncio, one upsert of 1 or 200 rows and a commit per transaction, without the flush.
Without PostgreSQL binaries (or psycopg) it prints why and measures nothing.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psycopg
import psycopg.waiting
import trio
import trio_asyncio

from afactors.store import Durability
from afactors.store._pg_store import SETUP, UPSERT
from afactors.store.pg_server import PgServer, PgUnavailable, throwaway_server
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress, tree_cpu_seconds
from bench.store import commit_load, get_rate, scratch

COMMITTERS = (1, 200)
DURABILITIES: tuple[Durability, ...] = ("durable", "fast")
BACKENDS = ("lmdb", "postgresql")


def _server_cpu(server: PgServer) -> Callable[[], float]:
    """A clock of the CPU seconds the server's processes (postmaster and children) have used so far."""
    postmaster = int((server.directory / "data" / "postmaster.pid").read_text().split()[0])
    return lambda: tree_cpu_seconds(postmaster)


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


def _rows(batch: int, n: int) -> tuple[list[str], list[bytes], list[bytes]]:
    return ["turns"] * batch, [f"driver/{n:08}/{i:04}".encode() for i in range(batch)], [b"x" * 600] * batch


async def _driver_load(url: str, bridge: bool, batch: int, seconds: float) -> tuple[float, float]:
    """Transactions/s and this process's CPU µs per transaction, each an upsert of `batch` rows and a commit
    (`synchronous_commit = off`, so the driver's cost shows, not the flush): psycopg's sync connection in a worker
    thread (what `PgStore` does), or its asyncio connection through trio-asyncio."""

    def measure_start() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def measure_end(start: tuple[float, float], n: int) -> tuple[float, float]:
        return n / (time.perf_counter() - start[0]), (time.process_time() - start[1]) * 1e6 / max(n, 1)

    if not bridge:
        conn = psycopg.connect(url)
        conn.execute("SET synchronous_commit = off")
        conn.execute(SETUP[0])
        conn.commit()
        limiter = trio.CapacityLimiter(1)

        def apply(rows: tuple[list[str], list[bytes], list[bytes]]) -> None:
            conn.execute(UPSERT, rows)
            conn.commit()

        with conn:
            start, n = measure_start(), 0
            while time.perf_counter() - start[0] < seconds:
                await trio.to_thread.run_sync(apply, _rows(batch, n), limiter=limiter)
                n += 1
            return measure_end(start, n)
    # psycopg bound asyncio's `get_running_loop` when imported, before trio-asyncio replaced it with one that knows
    # trio-asyncio's loop: hand it the replacement.
    psycopg.waiting.get_running_loop = asyncio.get_running_loop  # type: ignore[attr-defined]
    async with trio_asyncio.open_loop():
        aconn = await trio_asyncio.aio_as_trio(psycopg.AsyncConnection.connect)(url)

        async def aapply(rows: tuple[list[str], list[bytes], list[bytes]]) -> None:
            await aconn.execute(UPSERT, rows)
            await aconn.commit()

        await trio_asyncio.aio_as_trio(aconn.execute)("SET synchronous_commit = off")
        await trio_asyncio.aio_as_trio(aconn.execute)(SETUP[0])
        await trio_asyncio.aio_as_trio(aconn.commit)()
        try:
            start, n = measure_start(), 0
            while time.perf_counter() - start[0] < seconds:
                await trio_asyncio.aio_as_trio(aapply)(_rows(batch, n))
                n += 1
            return measure_end(start, n)
        finally:
            await trio_asyncio.aio_as_trio(aconn.close)()


def _drivers(server: PgServer, seconds: float, samples: dict[str, list[float]]) -> None:
    """One round of the driver comparison (alternating), into `samples`."""
    for batch in (1, 200):
        for driver in ("thread", "bridge"):
            rate, cpu = trio.run(_driver_load, server.new_store_url(), driver == "bridge", batch, seconds)
            samples[f"pgstore.driver.tx_per_s.{driver}.{batch}"].append(rate)
            samples[f"pgstore.driver.cpu_us_per_tx.{driver}.{batch}"].append(cpu)
            progress(f"pgstore: driver {driver:6} batch {batch:3} {rate:9,.0f} tx/s {cpu:8,.0f} µs CPU/tx")


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
                _drivers(server, timing[0], samples)
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
