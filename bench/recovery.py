"""Recovery after kill -9 with a full inbox: readiness, first and last recovered reply, new requests meanwhile.

`python -m bench.recovery [--quick|--full] [--json PATH]`. Each run: a host (`python -m afactors`, durable,
Responses channel) whose target never answers (`bench.targets:stall`) accepts E background responses spread over
C conversations (`conversation` = one of C ids, E/C each): every one is durably in its conversation's inbox
(the first of each running, the others queued behind it). The host is killed with SIGKILL and started again on
the same state directory with the echo target. Measured from the restart's spawn:

* `recovery.readiness_s`: until a new POST /v1/responses answers 200; `recovery.readiness_added_s` (and
  `recovery.readiness_cpu_added_s`, server CPU): over an empty start measured just before, in the same run;
* `recovery.first_reply_s` / `recovery.last_reply_s`: until the first / last of the E recovered responses was
  committed (its record's `completed_at`, read from the store after the run);
* `recovery.first_after_ready_s`: first recovered reply after readiness;
* `recovery.new_p50_ms` / `recovery.new_p99_ms`: latency of new requests (4 sequential clients, fresh
  conversations) sent from readiness until the last recovered reply; `recovery.new_served` how many;
* `recovery.rss_mb_peak`: the host's peak RSS during recovery; `recovery.unrecovered`: responses not completed.

Full: 10,000 envelopes over 2,000 conversations. Quick: 2,000 over 400. Medians of 3 runs.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import httpx
import psutil
import trio

from afactors.store import Store
from bench.common import LOAD_CPU, MIN_RUNS, Metrics, bench_main, pin, summarize
from bench.harness import free_port, progress
from bench.startup import cpu_seconds, one_start, spawn, wait_ready

NEW_CLIENTS = 4
FILL_CLIENTS = 32
BODY = {"model": "m", "input": "hello"}
CHANNELS = ("responses",)
POLL_SECONDS = 1.0
"""How often /status.json is asked whether recovery is done (it lists the live actors: with thousands, a poll
costs the host milliseconds, so polling 4 times a second took ~5 % of its CPU during recovery)."""


def _wait_listening(process: subprocess.Popen[bytes], port: int, timeout: float = 120.0) -> None:
    """Until GET /status.json answers (a turn would stall on this host's target)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the host exited with {process.returncode} before serving")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status.json", timeout=10):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("the host did not start")


async def _fill(http: httpx.AsyncClient, envelopes: int, conversations: int) -> list[str]:
    """Accept `envelopes` background responses over `conversations` conversations; their ids."""
    ids: list[str] = []
    jobs = iter(range(envelopes))

    async def client() -> None:
        for n in jobs:
            body = {**BODY, "background": True, "conversation": f"conv_recovery{n % conversations}"}
            reply = await http.post("/v1/responses", json=body)
            reply.raise_for_status()
            ids.append(reply.json()["id"])

    async with trio.open_nursery() as nursery:
        for _ in range(FILL_CLIENTS):
            nursery.start_soon(client)
    return ids


async def _recovering(http: httpx.AsyncClient) -> int:
    """Recovered conversations not yet done plus background turns in flight, from /status.json."""
    status = (await http.get("/status.json")).json()
    return int(status["actors"]["recovering"]) + len(status["background"])


async def _during_recovery(http: httpx.AsyncClient, latencies: list[float], timeout: float) -> None:
    """New requests from `NEW_CLIENTS` clients until the recovered turns are done (or `timeout`)."""
    async with trio.open_nursery() as nursery:

        async def client() -> None:
            while True:
                started = time.perf_counter()
                reply = await http.post("/v1/responses", json=BODY)
                if reply.status_code == 200:
                    latencies.append((time.perf_counter() - started) * 1000.0)

        for _ in range(NEW_CLIENTS):
            nursery.start_soon(client)
        with trio.move_on_after(timeout):
            while await _recovering(http):  # noqa: ASYNC110 (polling another process)
                await trio.sleep(POLL_SECONDS)
        nursery.cancel_scope.cancel()


def _completed_at(state: Path, ids: list[str]) -> list[float]:
    async def read() -> list[float]:
        async with Store.open(state) as store:
            wanted = set(ids)
            return [r.completed_at for _, r in store.scan("responses") if r.id in wanted and r.completed_at]

    return trio.run(read)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def one_run(envelopes: int, conversations: int) -> dict[str, float]:
    """An empty start for comparison, then fill, kill -9, restart; the figures of one run."""
    empty_ready, empty_cpu = one_start(CHANNELS)
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as scratch:
        state, log, port = Path(scratch) / "state", Path(scratch) / "server.log", free_port()
        limits = httpx.Limits(max_connections=FILL_CLIENTS + NEW_CLIENTS + 2)
        url = f"http://127.0.0.1:{port}"

        async def fill() -> list[str]:
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                return await _fill(http, envelopes, conversations)

        process = spawn(port, state, "bench.targets:stall", log, CHANNELS)
        try:
            _wait_listening(process, port)
            ids = trio.run(fill)
        finally:
            process.kill()
            process.wait()
        spawned, spawned_mono = time.time(), time.monotonic()
        process = spawn(port, state, "bench.targets:echo", log, CHANNELS)
        peak = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                try:
                    peak[0] = max(peak[0], psutil.Process(process.pid).memory_info().rss)
                except psutil.NoSuchProcess:
                    return

        sampler = threading.Thread(target=sample)
        sampler.start()
        latencies: list[float] = []

        async def during() -> None:
            async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
                await _during_recovery(http, latencies, 600.0)

        try:
            ready = wait_ready(process, port, spawned_mono)
            ready_cpu = cpu_seconds(process)
            trio.run(during)
        finally:
            stop.set()
            sampler.join()
            process.terminate()
            process.wait(timeout=30)
        done = _completed_at(state, ids)
    first, last = (min(done) - spawned, max(done) - spawned) if done else (float("nan"), float("nan"))
    return {
        "readiness_s": ready,
        "readiness_added_s": ready - empty_ready,
        "readiness_cpu_added_s": ready_cpu - empty_cpu,
        "first_reply_s": first,
        "last_reply_s": last,
        "first_after_ready_s": first - ready,
        "new_p50_ms": _percentile(latencies, 0.5),
        "new_p99_ms": _percentile(latencies, 0.99),
        "new_served": float(len(latencies)),
        "rss_mb_peak": peak[0] / 2**20,
        "unrecovered": float(len(ids) - len(done)),
    }


def run(quick: bool) -> Metrics:
    """MIN_RUNS runs of fill, kill -9, restart."""
    envelopes, conversations = (2_000, 400) if quick else (10_000, 2_000)
    pin(0, LOAD_CPU)
    one_start(CHANNELS)  # fills the bytecode cache
    samples: dict[str, list[float]] = defaultdict(list)
    for number in range(1, MIN_RUNS + 1):
        figures = one_run(envelopes, conversations)
        progress(f"  run {number}/{MIN_RUNS} " + "  ".join(f"{k} {v:.3g}" for k, v in figures.items()))
        for name, value in figures.items():
            samples[f"recovery.{name}"].append(value)
    metrics = summarize(samples)
    metrics["recovery.load_average"] = psutil.getloadavg()[0]
    metrics.notes["recovery.sizes"] = f"{envelopes:,} envelopes over {conversations:,} conversations" + (
        " (quick sizes)" if quick else ""
    )
    return metrics


if __name__ == "__main__":
    sys.exit(bench_main("recovery", run))
