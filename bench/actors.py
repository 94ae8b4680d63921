"""Conversation actor runtime: memory per idle actor, memory at 100k conversations, durable turns/s, isolation.

`python -m bench.actors [--quick|--full] [--json PATH]`. Every measurement runs in a fresh subprocess
(`--worker NAME ARGS_JSON`), so memory figures are that process's own.

* `actors.idle_bytes`: anonymous RSS of N conversations kept live after one turn each, minus the same run
  with `max_active=1` (same work, nothing kept), divided by N. Target <= 8 KB.
* `actors.rss_mb_100k`: peak RSS of 100,000 conversations of one durable turn each, `max_active=10,000`.
  Target: finishes within 24 GiB.
* `actors.turns_per_s.200`: durable turns/s (fsync'd group commits) of an echo target, 200 conversations
  each sending its next turn as soon as the last one is answered. Target >= 15,000.
  `actors.cpu_us_per_turn.200`: the trio thread's CPU time per turn in that run (sender, actor, encoding; not the
  writer thread's flush), which a loaded machine distorts far less than turns/s.
  `actors.flush_ms.200`: the writer's mean time per transaction in that run (the puts, the flush in its thread, until
  the trio thread takes the news: `Store.on_transaction`), and `actors.flush_share.200` the share of the run they
  add up to. The flush runs beside the trio thread, which meanwhile runs the turns of the conversations not in that
  transaction (a long queue is written as two); `actors.trio_idle_share.200` is the share of the run the trio
  thread did not run (it waits out each transaction's puts, and idles when every conversation waits on a flush).
* `actors.isolation_p99_ratio`: p99 turn latency of 50 fast conversations while one conversation's 5-s turn
  runs beside them, divided by their p99 while it does not (5-s phases A B B A of one run, durability
  `unsafe` so that fsync jitter of a shared disk does not drown what is measured). Target <= 1.2.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import trio

from afactors.actors import ActorSystem
from afactors.model import ConversationKey, Envelope, Message, TurnContext, Update
from afactors.store import Store
from bench.common import REPO_ROOT, Metrics, bench_main, summarize, turn_text

CONCURRENCY = 200


class Echo:
    """Answers "turn N" at once; conversations named "slow..." first sleep 5 s."""

    async def run(self, ctx: TurnContext) -> AsyncIterator[Update]:
        if ctx.key.conversation.startswith("slow"):
            await trio.sleep(5.0)
        yield Update(delta=turn_text(ctx.seq))


def _envelope(conversation: str) -> Envelope:
    return Envelope(ConversationKey("bench", conversation), (Message("user", "hello"),))


def _rss_anon_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


async def _one_turn_each(system: ActorSystem, count: int) -> None:
    """`count` conversations of one turn each, `CONCURRENCY` at a time."""
    names = iter(range(count))

    async def worker() -> None:
        for n in names:
            await (await system.submit(_envelope(f"c{n}"))).reply()

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(worker)


# -- workers (each runs in its own process) ------------------------------------------------------------------


async def worker_idle(state: str, count: int, keep: bool) -> dict[str, float]:
    async with Store.open(state, durability="unsafe", map_size=1 << 30) as store:
        async with ActorSystem.open(store, Echo(), max_active=count if keep else 1) as system:
            await _one_turn_each(system, count)
            gc.collect()
            return {"rss_anon": _rss_anon_bytes(), "active": system.stats.active}


async def worker_scale(state: str, count: int, max_active: int) -> dict[str, float]:
    async with Store.open(state, map_size=4 << 30) as store:
        async with ActorSystem.open(store, Echo(), max_active=max_active) as system:
            start = time.perf_counter()
            await _one_turn_each(system, count)
            elapsed = time.perf_counter() - start
            return {
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "seconds": elapsed,
                "active": system.stats.active,
                "turns": system.stats.turns,
            }


async def worker_throughput(state: str, conversations: int, seconds: float) -> dict[str, float]:
    async with Store.open(state) as store, ActorSystem.open(store, Echo()) as system:
        done = 0
        stop = trio.current_time() + seconds

        async def talk(name: str) -> None:
            nonlocal done
            while trio.current_time() < stop:
                await (await system.submit(_envelope(name))).reply()
                done += 1

        await _one_turn_each(system, conversations)  # warm up: every actor active
        transactions, flushing = 0, 0.0

        def transaction(_: int, seconds: float) -> None:
            nonlocal transactions, flushing
            transactions += 1
            flushing += seconds

        store.on_transaction = transaction
        start, cpu = time.perf_counter(), time.thread_time()
        async with trio.open_nursery() as nursery:
            for n in range(conversations):
                nursery.start_soon(talk, f"c{n}")
        elapsed, busy = time.perf_counter() - start, time.thread_time() - cpu
        return {
            "turns_per_s": done / elapsed,
            "cpu_us_per_turn": 1e6 * busy / done,
            "flush_ms": 1000 * flushing / max(transactions, 1),
            "flush_share": flushing / elapsed,
            "trio_idle_share": 1 - busy / elapsed,
            "transactions": store.stats.transactions,
            "largest_batch": store.stats.largest_batch,
        }


def _slow_phase(n: int) -> bool:
    return n % 4 in (1, 2)


async def worker_isolation(state: str, fast: int, phases: int) -> dict[str, float]:
    """Fast conversations throughout; in phases 2 and 3 of every 4 (5 s each: A B B A, so drift over time
    weighs on both sides alike) one conversation's turn takes those 5 s.

    Latencies are grouped by the phase a turn was sent in, so both groups see the same machine and disk.
    """
    latencies: dict[bool, list[float]] = {False: [], True: []}
    phase = 5.0
    async with Store.open(state, durability="unsafe", map_size=1 << 30) as store:  # no fsync jitter of a shared disk
        async with ActorSystem.open(store, Echo()) as system:
            await _one_turn_each(system, fast)
            start = trio.current_time() + 3.0  # warm-up: histories, the map and the allocator settle first
            stop = start + phases * phase

            async def talk(name: str) -> None:
                done = 0
                while (sent := trio.current_time()) < stop:  # a fresh conversation every 20 turns: a steady load
                    await (await system.submit(_envelope(f"{name}-{done // 20}"))).reply()
                    done += 1
                    if sent >= start:
                        latencies[_slow_phase(int((sent - start) // phase))].append(trio.current_time() - sent)

            async def slow_turns() -> None:
                for n in filter(_slow_phase, range(phases)):
                    await trio.sleep_until(start + n * phase)
                    await (await system.submit(_envelope("slow"))).reply()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow_turns)
                for n in range(fast):
                    nursery.start_soon(talk, f"c{n}")

    def p99(values: list[float]) -> float:
        values.sort()
        return 1000 * values[int(len(values) * 0.99)]

    alone, beside = p99(latencies[False]), p99(latencies[True])
    return {"p99_alone_ms": alone, "p99_beside_ms": beside, "ratio": beside / alone}


WORKERS: dict[str, Callable[..., Coroutine[Any, Any, dict[str, float]]]] = {
    "idle": worker_idle,
    "scale": worker_scale,
    "throughput": worker_throughput,
    "isolation": worker_isolation,
}


def _in_subprocess(name: str, **kwargs: Any) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="afactors-bench-actors-") as tmp:
        kwargs["state"] = str(Path(tmp) / "state")
        out = subprocess.run(
            [sys.executable, "-m", "bench.actors", "--worker", name, json.dumps(kwargs)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=1800,
        )
    if out.returncode != 0:
        raise RuntimeError(f"bench worker {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> Metrics:
    """Run every measurement (3 runs each for timings) and return the medians."""
    runs = 3
    idle_count = 20_000 if quick else 100_000
    seconds = 3.0 if quick else 10.0
    samples: dict[str, list[float]] = {
        "actors.idle_bytes": [],
        "actors.turns_per_s.200": [],
        "actors.cpu_us_per_turn.200": [],
        "actors.flush_ms.200": [],
        "actors.flush_share.200": [],
        "actors.trio_idle_share.200": [],
        "actors.isolation_p99_ratio": [],
        "actors.isolation_p99_ms.alone": [],
        "actors.isolation_p99_ms.beside_slow": [],
        "actors.rss_mb_100k": [],
        "actors.seconds_100k": [],
        "actors.largest_commit_batch": [],
    }
    for _ in range(runs):
        kept = _in_subprocess("idle", count=idle_count, keep=True)
        dropped = _in_subprocess("idle", count=idle_count, keep=False)
        samples["actors.idle_bytes"].append((kept["rss_anon"] - dropped["rss_anon"]) / idle_count)
    for _ in range(runs):
        result = _in_subprocess("throughput", conversations=CONCURRENCY, seconds=seconds)
        samples["actors.turns_per_s.200"].append(result["turns_per_s"])
        samples["actors.cpu_us_per_turn.200"].append(result["cpu_us_per_turn"])
        samples["actors.flush_ms.200"].append(result["flush_ms"])
        samples["actors.flush_share.200"].append(result["flush_share"])
        samples["actors.trio_idle_share.200"].append(result["trio_idle_share"])
        samples["actors.largest_commit_batch"].append(result["largest_batch"])
    for _ in range(runs):
        isolation = _in_subprocess("isolation", fast=50, phases=2 if quick else 8)
        samples["actors.isolation_p99_ms.alone"].append(isolation["p99_alone_ms"])
        samples["actors.isolation_p99_ms.beside_slow"].append(isolation["p99_beside_ms"])
        samples["actors.isolation_p99_ratio"].append(isolation["ratio"])
    for _ in range(1 if quick else runs):
        scale = _in_subprocess("scale", count=100_000, max_active=10_000)
        samples["actors.rss_mb_100k"].append(scale["peak_rss_mb"])
        samples["actors.seconds_100k"].append(scale["seconds"])
    metrics = summarize(samples)
    metrics.notes["actors.idle_bytes"] = f"{idle_count:,} live actors after one turn each, anonymous RSS"
    metrics.notes["actors.durability"] = "turns/s and 100k runs: durability='durable' (fsync); isolation: 'unsafe'"
    return metrics


def _worker_main(name: str, kwargs_json: str) -> int:
    result = trio.run(lambda: WORKERS[name](**json.loads(kwargs_json)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        raise SystemExit(_worker_main(sys.argv[2], sys.argv[3]))
    raise SystemExit(bench_main("actors", run))
