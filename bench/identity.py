"""What the identity service costs a message, with its write-through cache (a single host) and without it (a cluster
node, where another node may change any row: every lookup reads the store, every change expects what it read).

`python -m bench.identity [--quick|--full] [--json PATH]`. Two loads per store, on a fresh LMDB directory or a fresh
schema of one throwaway PostgreSQL server (fsync on, loopback, `durable`):

- `seen`: `resolve` of 1,000 senders seen a moment ago, round robin, one after the other: what each incoming message
  pays (no write: last seen is written at most every 30 s per sender).
- `first`: first contact of new senders, 100 at a time: each issues a key (one commit: link and identity rows).

Cases: `lmdb.cached` and `pg.cached` (a single host: `IdentityService(store)`), `pg.shared` (a cluster node: the
store opened as node "bench", `IdentityService(store, shared=True)`). Interleaved, rotated between runs.
Metrics: `identity.resolves_per_s.seen.<case>`, `identity.us_per_resolve.seen.<case>`,
`identity.contacts_per_s.first.<case>`; per run `identity.shared_over_cached.<load>` (pg.shared / pg.cached rates).
Without PostgreSQL binaries it measures the LMDB case only.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from typing import Any

import trio

from afactors.identity import IdentityService
from afactors.model import Identity
from afactors.store import Store
from afactors.store.pg_server import PgServer, PgUnavailable, throwaway_server
from bench.common import MIN_RUNS, Metrics, bench_main, summarize
from bench.harness import progress

SENDERS = 1000
CONCURRENT = 100
CASES = ("lmdb.cached", "pg.cached", "pg.shared")


async def _load(location: str, options: dict[str, Any], shared: bool, seconds: float) -> tuple[float, float]:
    """(resolves/s of senders seen a moment ago, first contacts/s)."""
    async with Store.open(location, durability="durable", **options) as store:
        service = IdentityService(store, shared=shared)
        people = [Identity("bench", f"known-{n}") for n in range(SENDERS)]
        for person in people:
            await service.resolve("default", person)
        done, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds:
            await service.resolve("default", people[done % SENDERS])
            done += 1
        seen = done / elapsed
        contacts, began = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - began) < seconds:
            async with trio.open_nursery() as nursery:
                for n in range(CONCURRENT):
                    nursery.start_soon(service.resolve, "default", Identity("bench", f"new-{contacts + n}"))
            contacts += CONCURRENT
        return seen, contacts / elapsed


def _location(case: str, server: PgServer | None, stack: ExitStack) -> tuple[str, dict[str, Any]] | None:
    if case == "lmdb.cached":
        return stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-identity-")), {}
    if server is None:
        return None
    return server.new_store_url(), ({"node": "bench"} if case == "pg.shared" else {})


def run(quick: bool) -> Metrics:
    """Median of `MIN_RUNS` runs of every case, interleaved."""
    seconds = 2.0 if quick else 5.0
    samples: dict[str, list[float]] = defaultdict(list)
    with ExitStack() as stack:
        try:
            server: PgServer | None = stack.enter_context(throwaway_server())
        except PgUnavailable as exc:
            progress(f"identity: PostgreSQL cases skipped: {exc}")
            server = None
        for run_no in range(MIN_RUNS):
            rates: dict[str, tuple[float, float]] = {}
            for case in CASES[run_no % len(CASES) :] + CASES[: run_no % len(CASES)]:
                where = _location(case, server, stack)
                if where is None:
                    continue
                seen, first = trio.run(_load, *where, case == "pg.shared", seconds)
                rates[case] = (seen, first)
                samples[f"identity.resolves_per_s.seen.{case}"].append(seen)
                samples[f"identity.us_per_resolve.seen.{case}"].append(1e6 / seen)
                samples[f"identity.contacts_per_s.first.{case}"].append(first)
                progress(f"identity: run {run_no + 1} {case:12} seen {seen:9,.0f}/s first contacts {first:7,.0f}/s")
            if "pg.shared" in rates:
                for n, load in enumerate(("seen", "first")):
                    samples[f"identity.shared_over_cached.{load}"].append(rates["pg.shared"][n] / rates["pg.cached"][n])
    return summarize(samples)


if __name__ == "__main__":
    sys.exit(bench_main("identity", run))
